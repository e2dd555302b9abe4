//! Prometheus metrics: every series Orderly exposes, named and described once, and the `/metrics`
//! endpoint that serves them. Call sites record through the `metrics` facade, so instrumenting
//! code never depends on the exporter (and tests run without one).

use std::{net::SocketAddr, time::Duration};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

use crate::messaging::Consumed;

pub const SAGAS_STARTED: &str = "orderly_sagas_started_total";
pub const SAGAS_ENDED: &str = "orderly_sagas_ended_total";
pub const SAGAS_PARKED: &str = "orderly_sagas_parked_total";
pub const SAGAS_OPEN: &str = "orderly_sagas_open";
pub const SAGA_OLDEST_OPEN_AGE: &str = "orderly_saga_oldest_open_age_seconds";
pub const SAGA_DURATION: &str = "orderly_saga_duration_seconds";
pub const COMPENSATIONS: &str = "orderly_compensations_total";
pub const COMPENSATION_ATTEMPTS: &str = "orderly_compensation_attempts_total";
pub const OUTBOX_BACKLOG: &str = "orderly_outbox_backlog";
pub const OUTBOX_PUBLISHED: &str = "orderly_outbox_published_total";
pub const OUTBOX_PUBLISH_LATENCY: &str = "orderly_outbox_publish_latency_seconds";
pub const CONSUMER_LAG: &str = "orderly_consumer_lag";
pub const EVENTS_CONSUMED: &str = "orderly_events_consumed_total";
pub const DEAD_LETTERS: &str = "orderly_dead_letters_total";
pub const INBOX_DUPLICATES: &str = "orderly_inbox_duplicates_total";
pub const CONSUMER_REJOINS: &str = "orderly_consumer_rejoins_total";
pub const GRPC_REQUESTS: &str = "orderly_grpc_requests_total";
pub const GRPC_REQUEST_DURATION: &str = "orderly_grpc_request_duration_seconds";
pub const HEALTH_SERVING: &str = "orderly_health_serving";
pub const LEASE_HELD: &str = "orderly_lease_held";
pub const UNDOS_REFUSED: &str = "orderly_undos_refused_total";
pub const TLS_HANDSHAKES_FAILED: &str = "orderly_tls_handshakes_failed_total";
pub const AUTH_REFUSED: &str = "orderly_auth_refused_total";
pub const RATE_LIMITED: &str = "orderly_rate_limited_total";

/// Latency buckets from 1 ms to 60 s: hops take milliseconds, sagas up to their deadline.
const BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// Serves `/metrics` on `addr` from this process's recorder. Must run inside the Tokio runtime.
pub fn serve(addr: SocketAddr) -> Result<(), BuildError> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)?
        .install()?;
    describe();
    tracing::info!(%addr, "metrics served at /metrics");
    Ok(())
}

fn describe() {
    describe_counter!(SAGAS_STARTED, "Sagas started (one per order)");
    describe_counter!(
        SAGAS_ENDED,
        "Sagas decided, by outcome (confirmed, rejected)"
    );
    describe_counter!(
        SAGAS_PARKED,
        "Sagas parked because a compensation keeps failing"
    );
    describe_gauge!(
        SAGAS_OPEN,
        "Sagas not yet decided or still compensating, by state"
    );
    describe_gauge!(
        SAGA_OLDEST_OPEN_AGE,
        "Age of the oldest saga still running or compensating"
    );
    describe_histogram!(
        SAGA_DURATION,
        metrics::Unit::Seconds,
        "From a saga's first event to its decision, by outcome"
    );
    describe_counter!(COMPENSATIONS, "Compensations completed, by step");
    describe_counter!(
        COMPENSATION_ATTEMPTS,
        "Compensation calls, by step and result (ok, failed)"
    );
    describe_gauge!(
        OUTBOX_BACKLOG,
        "Outbox rows committed but not yet published, by component"
    );
    describe_counter!(
        OUTBOX_PUBLISHED,
        "Outbox rows published to Kafka, by component"
    );
    describe_histogram!(
        OUTBOX_PUBLISH_LATENCY,
        metrics::Unit::Seconds,
        "From an outbox row's commit to the broker's acknowledgement"
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Messages not yet committed by a consumer group, by topic and partition (from the broker's watermarks)"
    );
    describe_counter!(
        EVENTS_CONSUMED,
        "Messages consumed, by consumer, topic and outcome (applied, duplicate, dead_lettered)"
    );
    describe_counter!(
        DEAD_LETTERS,
        "Messages sent to a dead-letter topic, by consumer and origin topic"
    );
    describe_counter!(
        INBOX_DUPLICATES,
        "Redelivered events the inbox skipped, by consumer and topic"
    );
    describe_counter!(
        GRPC_REQUESTS,
        "gRPC requests served, by method and status code"
    );
    describe_histogram!(
        GRPC_REQUEST_DURATION,
        metrics::Unit::Seconds,
        "gRPC request latency, by method"
    );
    describe_gauge!(
        HEALTH_SERVING,
        "1 when the component reports SERVING, 0 when NOT_SERVING"
    );
    describe_gauge!(
        LEASE_HELD,
        "1 in the replica that holds the lease (and does its background work), 0 in the others"
    );
    describe_counter!(
        UNDOS_REFUSED,
        "Releases and refunds refused because the order's saga was not rolling back"
    );
    describe_counter!(
        TLS_HANDSHAKES_FAILED,
        "Connections refused in the TLS handshake (plaintext, a certificate of another CA, none in time)"
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests refused because their caller was over its rate limit, by method"
    );
    describe_counter!(
        AUTH_REFUSED,
        "Requests refused for their caller, by method and code (UNAUTHENTICATED, PERMISSION_DENIED)"
    );
}

/// How a consumed message ended (the `outcome` label of `orderly_events_consumed_total`);
/// duplicates and dead letters are also counted on their own.
pub fn consumed(consumer: &'static str, topic: &str, outcome: Consumed) {
    let topic = topic.to_owned();
    counter!(EVENTS_CONSUMED, "consumer" => consumer, "topic" => topic.clone(), "outcome" => outcome.label())
        .increment(1);
    match outcome {
        Consumed::Duplicate => {
            counter!(INBOX_DUPLICATES, "consumer" => consumer, "topic" => topic).increment(1)
        }
        Consumed::DeadLettered => {
            counter!(DEAD_LETTERS, "consumer" => consumer, "topic" => topic).increment(1)
        }
        Consumed::Applied | Consumed::Skipped => {}
    }
}

pub fn consumer_rejoined(consumer: &'static str) {
    counter!(CONSUMER_REJOINS, "consumer" => consumer).increment(1);
}

pub fn grpc_request(method: &str, code: &'static str, elapsed: Duration) {
    let method = method.to_owned();
    counter!(GRPC_REQUESTS, "method" => method.clone(), "code" => code).increment(1);
    histogram!(GRPC_REQUEST_DURATION, "method" => method).record(elapsed.as_secs_f64());
}

pub fn outbox_published(component: &'static str, latency: Duration) {
    counter!(OUTBOX_PUBLISHED, "component" => component).increment(1);
    histogram!(OUTBOX_PUBLISH_LATENCY, "component" => component).record(latency.as_secs_f64());
}

pub fn outbox_backlog(component: &'static str, rows: u64) {
    gauge!(OUTBOX_BACKLOG, "component" => component).set(rows as f64);
}

pub fn consumer_lag(group: &'static str, topic: &str, partition: i32, lag: i64) {
    gauge!(CONSUMER_LAG, "group" => group, "topic" => topic.to_owned(), "partition" => partition.to_string())
        .set(lag as f64);
}

pub fn health_serving(component: &'static str, serving: bool) {
    gauge!(HEALTH_SERVING, "component" => component).set(if serving { 1.0 } else { 0.0 });
}
