//! `orderly rebuild`: rebuilds the query side's read model from the log (OrderViewService/
//! RebuildReadModel) and follows it until reads use the new one: a progress bar with rate and
//! ETA on a terminal, a line every few seconds otherwise, and what it did at the end.

use std::{
    io::IsTerminal,
    time::{Duration, Instant},
};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use orderly_proto::query::v1::{
    RebuildProgress, RebuildReadModelRequest, order_view_service_client::OrderViewServiceClient,
};
use serde_json::json;

use crate::ctl::{DialArgs, Output, refused};

#[derive(Args, Debug)]
pub struct RebuildArgs {
    /// The query side's gRPC address (host:port)
    #[arg(long, env = "ORDERLY_CTL_QUERY", default_value = "localhost:50056")]
    pub query: String,

    #[command(flatten)]
    pub dial: DialArgs,

    /// A line for people, or a JSON object for scripts, at the end
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// How often progress is printed as a line, off a terminal.
const LINE_EVERY: Duration = Duration::from_secs(2);

pub async fn run(args: RebuildArgs) -> anyhow::Result<()> {
    let channel = args.dial.dial()?.channel(&args.query)?;
    let refused = |status| refused("rebuild of the read model", &status);
    let mut updates = OrderViewServiceClient::new(channel)
        .rebuild_read_model(RebuildReadModelRequest {})
        .await
        .map_err(refused)?
        .into_inner();
    let began = Instant::now();
    let mut shown = Shown::new(args.output);
    let mut last = None;
    let mut warned = false;
    while let Some(progress) = updates.message().await.map_err(refused)? {
        if progress.events_lost_to_retention > 0 && !warned {
            warned = true;
            shown.warn(&format!(
                "the topics no longer hold their first {} events (retention deleted them): the \
                 rebuilt read model lacks them",
                progress.events_lost_to_retention
            ));
        }
        shown.update(&progress);
        let switched = progress.switched;
        last = Some(progress);
        if switched {
            break;
        }
    }
    shown.finish();
    let Some(last) = last.filter(|last| last.switched) else {
        anyhow::bail!(
            "the query side stopped answering before the rebuilt read model was switched to; it \
             goes on there: run `orderly rebuild` again to follow it"
        );
    };
    let seconds = began.elapsed().as_secs_f64();
    match args.output {
        Output::Json => println!(
            "{}",
            json!({
                "generation": last.generation,
                "switched": true,
                "events_applied": last.events_applied,
                "events_lost_to_retention": last.events_lost_to_retention,
                "seconds": seconds,
            })
        ),
        Output::Table => println!(
            "reads use generation {} of the read model: {} events applied, followed for {:.1} s",
            last.generation, last.events_applied, seconds
        ),
    }
    Ok(())
}

/// Progress as it is shown: a bar on a terminal, lines otherwise, nothing for JSON.
enum Shown {
    Bar(ProgressBar),
    Lines {
        began: Instant,
        applied_at_start: Option<i64>,
        printed: Option<Instant>,
    },
    Nothing,
}

impl Shown {
    fn new(output: Output) -> Self {
        if output == Output::Json {
            return Self::Nothing;
        }
        if !std::io::stderr().is_terminal() {
            return Self::Lines {
                began: Instant::now(),
                applied_at_start: None,
                printed: None,
            };
        }
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:32}] {human_pos}/{human_len} events, {per_sec}, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Self::Bar(bar)
    }

    fn update(&mut self, progress: &RebuildProgress) {
        let paused = if progress.paused {
            " (the projection is paused: resume it to go on)"
        } else {
            ""
        };
        match self {
            Self::Bar(bar) => {
                bar.set_length(u64::try_from(progress.events_total).unwrap_or_default());
                bar.set_position(u64::try_from(progress.events_applied).unwrap_or_default());
                bar.set_message(format!("generation {}{paused}", progress.generation));
            }
            Self::Lines {
                began,
                applied_at_start,
                printed,
            } => {
                let start = *applied_at_start.get_or_insert(progress.events_applied);
                if printed.is_some_and(|at| at.elapsed() < LINE_EVERY) && !progress.switched {
                    return;
                }
                *printed = Some(Instant::now());
                let rate = (progress.events_applied - start) as f64
                    / began.elapsed().as_secs_f64().max(0.001);
                eprintln!(
                    "generation {}: {} of {} events applied, {rate:.0} events/s{}{paused}",
                    progress.generation,
                    progress.events_applied,
                    progress.events_total,
                    eta(progress, rate),
                );
            }
            Self::Nothing => {}
        }
    }

    /// Above the bar if there is one.
    fn warn(&self, warning: &str) {
        match self {
            Self::Bar(bar) => bar.println(format!("warning: {warning}")),
            _ => eprintln!("warning: {warning}"),
        }
    }

    fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish();
        }
    }
}

fn eta(progress: &RebuildProgress, rate: f64) -> String {
    let left = progress.events_total - progress.events_applied;
    if left <= 0 || rate < 1.0 {
        return String::new();
    }
    format!(", about {:.0} s left", left as f64 / rate)
}
