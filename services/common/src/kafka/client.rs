//! librdkafka settings every client shares: where the brokers are and how to authenticate.

use rdkafka::ClientConfig;

use crate::config::KafkaArgs;

pub fn client_config(args: &KafkaArgs) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.kafka_bootstrap)
        .set(
            "security.protocol",
            args.kafka_security_protocol.as_librdkafka(),
        )
        // Reconnect quickly after a broker restart instead of backing off for seconds.
        .set("reconnect.backoff.max.ms", "1000")
        // Orderly exports its own metrics; with pushing on, every client asked the broker for a
        // metrics subscription again and again (KIP-714), idle or not.
        .set("enable.metrics.push", "false");
    if let Some(mechanism) = &args.kafka_sasl_mechanism {
        config.set("sasl.mechanism", mechanism);
    }
    if let Some(username) = &args.kafka_sasl_username {
        config.set("sasl.username", username);
    }
    if let Some(password) = &args.kafka_sasl_password {
        config.set("sasl.password", password);
    }
    if let Some(ca) = &args.kafka_ssl_ca_location {
        config.set("ssl.ca.location", ca.display().to_string());
    }
    config
}
