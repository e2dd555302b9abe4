//! `orderly ctl lag`: each consumer group's lag per topic and partition, from the broker (the
//! high watermark minus the group's committed offset).

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use orderly_common::{
    config::KafkaArgs,
    kafka::{client_config, lag},
};
use rdkafka::consumer::BaseConsumer;
use serde_json::json;

use super::{Output, output::table};
use crate::components;

#[derive(Args, Debug)]
pub struct LagArgs {
    /// More consumer groups to show beyond the components' (a saga participant's, say)
    #[arg(long = "group")]
    pub groups: Vec<String>,

    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// Each broker round trip waits at most this long.
const TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(args: LagArgs, output: Output) -> anyhow::Result<()> {
    let groups: Vec<String> = (components::names().map(str::to_owned))
        .chain(args.groups)
        .collect();
    let kafka = args.kafka;
    let rows = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut rows = Vec::new();
        for group in groups {
            // Reads the group's committed offsets without joining it.
            let consumer: BaseConsumer = client_config(&kafka)
                .set("group.id", &group)
                .create()
                .context("a Kafka client")?;
            let lags = lag::committed_lags(&consumer, TIMEOUT)
                .with_context(|| format!("lag of group {group} from {}", kafka.kafka_bootstrap))?;
            rows.extend(lags.into_iter().map(|lag| (group.clone(), lag)));
        }
        Ok(rows)
    })
    .await??;
    match output {
        Output::Json => {
            let rows: Vec<_> = (rows.iter())
                .map(|(group, lag)| {
                    json!({"group": group, "topic": lag.topic, "partition": lag.partition,
                           "committed": lag.committed, "lag": lag.lag})
                })
                .collect();
            println!("{}", json!(rows));
        }
        Output::Table => {
            let rows: Vec<Vec<String>> = (rows.iter())
                .map(|(group, lag)| {
                    vec![
                        group.clone(),
                        lag.topic.clone(),
                        lag.partition.to_string(),
                        lag.committed.to_string(),
                        lag.lag.to_string(),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(&["GROUP", "TOPIC", "PARTITION", "COMMITTED", "LAG"], &rows)
            );
        }
    }
    Ok(())
}
