//! Measures the embedded broker through rdkafka, the way Orderly's services use it:
//! produce-to-consume latency for several `fetch.wait.max.ms` values, and producer and consumer
//! throughput for several `linger.ms` values, on SQLite (durable) and memory storage.
//!
//!     cargo run --release --example broker_bench [-- MESSAGES]

use std::time::{Duration, Instant};

use anyhow::Context;
use orderly_broker::BrokerArgs;
use orderly_common::{
    config::KafkaArgs,
    kafka::{self, EventProducer, topics},
};
use rdkafka::message::OwnedHeaders;
use tokio_util::sync::CancellationToken;

const LATENCY_SAMPLES: usize = 200;
const FETCH_WAITS_MS: [u32; 5] = [1, 5, 10, 100, 500];
const LINGERS_MS: [u32; 4] = [0, 2, 5, 20];
/// About the size of an encoded OrderPlaced envelope.
const PAYLOAD: [u8; 160] = [7; 160];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let messages: usize = std::env::args().nth(1).map_or(Ok(20_000), |n| n.parse())?;
    orderly_broker::configure_sqlite().await?;
    for storage in ["sqlite", "memory"] {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut broker = BrokerArgs::new(([127, 0, 0, 1], port).into(), dir.path().to_owned());
        if storage == "memory" {
            broker.storage = Some("memory://orderly/".into());
        }
        let stop = CancellationToken::new();
        let running = tokio::spawn({
            let stop = stop.clone();
            async move { orderly_broker::run(&broker, stop.cancelled_owned()).await }
        });
        let kafka = KafkaArgs::at(format!("127.0.0.1:{port}"));
        println!("\n== {storage} storage");
        println!("produce-to-consume latency, {LATENCY_SAMPLES} sequential messages");
        for wait in FETCH_WAITS_MS {
            let samples = if wait >= 100 {
                LATENCY_SAMPLES / 10
            } else {
                LATENCY_SAMPLES
            };
            let (p50, p99) = latency(&kafka, wait, samples).await?;
            println!("  fetch.wait.max.ms={wait:<4} p50 {p50:>8.2?}  p99 {p99:>8.2?}");
        }
        println!(
            "throughput, {messages} messages of {} bytes enqueued at once",
            PAYLOAD.len()
        );
        for linger in LINGERS_MS {
            let (produced, consumed) = throughput(&kafka, linger, messages).await?;
            println!(
                "  linger.ms={linger:<3} produce {produced:>8.0} msg/s  consume {consumed:>8.0} msg/s"
            );
        }
        stop.cancel();
        running.await??;
    }
    Ok(())
}

async fn create_topic(kafka: &KafkaArgs, topic: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match topics::ensure(kafka, &[topic.to_owned()]).await {
            Ok(()) => return Ok(()),
            Err(error) if Instant::now() > deadline => return Err(error.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn consumer(kafka: &KafkaArgs, topic: &str) -> anyhow::Result<kafka::GroupConsumer> {
    let group = format!("bench-{}", uuid::Uuid::new_v4());
    Ok(kafka::consumer(kafka, &group, &[topic])?)
}

/// Sends one message at a time and times until the consumer has it.
async fn latency(
    kafka: &KafkaArgs,
    fetch_wait_ms: u32,
    samples: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let mut kafka = kafka.clone();
    kafka.kafka_fetch_wait_max_ms = fetch_wait_ms;
    kafka.kafka_linger_ms = 0;
    let topic = format!("bench.latency.{fetch_wait_ms}");
    create_topic(&kafka, &topic).await?;
    let producer = EventProducer::new(&kafka)?;
    let consumer = consumer(&kafka, &topic)?;
    let mut times = Vec::with_capacity(samples);
    // The first round trip also waits for the consumer group to form; it is not counted.
    for round in 0..=samples {
        let started = Instant::now();
        producer
            .send_raw(&topic, "key", &PAYLOAD, OwnedHeaders::new())?
            .await?;
        tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .context("no message")??;
        if round > 0 {
            times.push(started.elapsed());
        }
    }
    times.sort();
    Ok((percentile(&times, 50), percentile(&times, 99)))
}

/// Enqueues `messages` at once, awaits every acknowledgement, then reads them all back.
async fn throughput(
    kafka: &KafkaArgs,
    linger_ms: u32,
    messages: usize,
) -> anyhow::Result<(f64, f64)> {
    let mut kafka = kafka.clone();
    kafka.kafka_linger_ms = linger_ms;
    let topic = format!("bench.throughput.{linger_ms}");
    create_topic(&kafka, &topic).await?;
    let producer = EventProducer::new(&kafka)?;
    let started = Instant::now();
    let deliveries = (0..messages)
        .map(|i| producer.send_raw(&topic, &(i % 64).to_string(), &PAYLOAD, OwnedHeaders::new()))
        .collect::<Result<Vec<_>, _>>()?;
    for delivery in deliveries {
        delivery.await?;
    }
    let produced = messages as f64 / started.elapsed().as_secs_f64();

    let consumer = consumer(&kafka, &topic)?;
    // Time from the first message, so joining the consumer group is not counted.
    tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .context("no message")??;
    let started = Instant::now();
    for _ in 1..messages {
        tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .context("consumer stalled")??;
    }
    Ok((
        produced,
        (messages - 1) as f64 / started.elapsed().as_secs_f64(),
    ))
}

fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    let index = (sorted.len() * percent / 100).min(sorted.len().saturating_sub(1));
    sorted.get(index).copied().unwrap_or_default()
}
