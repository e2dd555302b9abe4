//! The bench's flags: where Orderly answers, the workload it creates, the points it measures and
//! how long each phase may last (every wait of the bench is bounded by one of them).

use std::{str::FromStr, time::Duration};

use clap::{Parser, ValueEnum};

use crate::cpu::Watch;

/// Load benchmark shaped like real traffic, against running Orderly endpoints: many products
/// and customers, orders of 1-3 items, a tenth of the customers unable to pay (so a tenth of
/// the orders are compensated), closed loops (N clients each placing an order and waiting for
/// its decision, again and again) and open loops (orders offered at a fixed rate, latency
/// counted from the scheduled send time). Prints decided/s, latency percentiles, refusals,
/// errors and the CPU the processes under test spent per decided order, then checks that stock
/// and money are conserved (exits non-zero when they are not).
#[derive(Debug, Parser)]
#[command(name = "load_bench")]
pub struct Args {
    /// Order service endpoint (host:port or http://host:port)
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub order: String,

    /// Inventory service endpoint (products, stock)
    #[arg(long, default_value = "127.0.0.1:50052")]
    pub inventory: String,

    /// Payment service endpoint (accounts, balances)
    #[arg(long, default_value = "127.0.0.1:50053")]
    pub payment: String,

    /// Orchestrator endpoint (checked at the end: none of the run's sagas left open)
    #[arg(long, default_value = "127.0.0.1:50055")]
    pub orchestrator: String,

    /// Products to create, each with a random price between $1 and $100
    #[arg(long, default_value_t = 1000)]
    pub products: usize,

    /// Customers to create; every tenth deposits nothing, so its orders are declined by payment
    /// and compensated (reservation released, order REJECTED)
    #[arg(long, default_value_t = 1000)]
    pub customers: usize,

    /// Units each product is restocked with. The default is far more than a run can sell, so
    /// stock never limits it; set it low to have orders rejected for stock too
    #[arg(long, default_value_t = 1_000_000)]
    pub stock: u32,

    /// Seed of every random choice (prices, items, quantities, customers)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Closed-loop points: numbers of concurrent clients, comma separated ("" for none)
    #[arg(long, default_value = "1,8,32,128")]
    pub clients: List<usize>,

    /// Open-loop points: offered rates in orders per second, comma separated ("" for none)
    #[arg(long, default_value = "50,200")]
    pub rates: List<f64>,

    /// Warm-up before each closed-loop point's measured window, in seconds
    #[arg(long, default_value_t = 10.0)]
    pub warmup_secs: f64,

    /// Warm-up before each open-loop point's measured window (orders already offered at the
    /// point's rate), in seconds
    #[arg(long, default_value_t = 3.0)]
    pub open_warmup_secs: f64,

    /// Length of each point's measured window, in seconds
    #[arg(long, default_value_t = 30.0)]
    pub secs: f64,

    /// Length of the idle measurement before any load (CPU of the processes while nothing is
    /// offered), in seconds; 0 skips it
    #[arg(long, default_value_t = 10.0)]
    pub idle_secs: f64,

    /// After an open-loop window, how long orders still in flight may take to be decided before
    /// they are given up (and left to the final check)
    #[arg(long, default_value_t = 30.0)]
    pub drain_secs: f64,

    /// An open-loop point is "held" when at least 95% of the orders offered in its window were
    /// decided by the window's end plus this many seconds
    #[arg(long, default_value_t = 1.0)]
    pub hold_grace_secs: f64,

    /// Longest wait for one order's decision after PlaceOrder answered, in seconds
    #[arg(long, default_value_t = 60.0)]
    pub decision_timeout_secs: f64,

    /// Timeout of every unary call (PlaceOrder, setup, reads), in seconds
    #[arg(long, default_value_t = 10.0)]
    pub call_timeout_secs: f64,

    /// Longest wait, before checking conservation, for every order of the run to be decided
    #[arg(long, default_value_t = 120.0)]
    pub check_timeout_secs: f64,

    /// Longest wait at start for every endpoint to report SERVING on grpc.health.v1
    #[arg(long, default_value_t = 60.0)]
    pub ready_timeout_secs: f64,

    /// How the bench learns each order's decision
    #[arg(long, value_enum, default_value_t = Decisions::Auto)]
    pub decisions: Decisions,

    /// GetOrder polling interval when decisions are polled, in milliseconds
    #[arg(long, default_value_t = 5)]
    pub poll_ms: u64,

    /// HTTP/2 connections to the order service, shared round-robin by the clients (real load
    /// comes over many connections, and the server limits requests per connection)
    #[arg(long, default_value_t = 8)]
    pub connections: usize,

    /// Setup calls (products, accounts) in flight at once
    #[arg(long, default_value_t = 32)]
    pub setup_concurrency: usize,

    /// Talk to `orderly dev --secure`: TLS trusting <DIR>/ca.pem, and tokens from the issuer
    /// kept in DIR (its <data-dir>/secure): setup as catalogue and finance, each order as its
    /// customer
    #[arg(long)]
    pub secure_dir: Option<std::path::PathBuf>,

    /// Also count the CPU of processes named `postgres` (the databases under test)
    #[arg(long)]
    pub postgres: bool,

    /// Count the CPU of processes with these /proc/<pid>/comm names instead, comma separated
    /// [default: orderly, plus postgres with --postgres]
    #[arg(long, conflicts_with = "pids")]
    pub pid_names: Option<List<String>>,

    /// Count the CPU of these processes and all their descendants instead of matching names,
    /// comma separated (scripts/bench.sh passes what it started, so other `orderly` processes on
    /// the machine are not counted)
    #[arg(long)]
    pub pids: Option<List<u32>>,

    /// Also print the summary as a markdown table
    #[arg(long)]
    pub markdown: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Decisions {
    /// Follow the WatchOrder stream, or poll GetOrder if the server answers UNIMPLEMENTED (an
    /// older Orderly), so one bench measures old and new builds alike
    Auto,
    /// Always poll GetOrder, to measure what polling costs against a build that has WatchOrder
    Poll,
}

/// A comma-separated list; empty (or `none`) is an empty list, so a kind of point can be skipped.
#[derive(Clone, Debug)]
pub struct List<T>(pub Vec<T>);

impl<T: FromStr> FromStr for List<T>
where
    T::Err: std::fmt::Display,
{
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        if value.trim().is_empty() || value.trim() == "none" {
            return Ok(Self(Vec::new()));
        }
        value
            .split(',')
            .map(|item| {
                item.trim()
                    .parse()
                    .map_err(|error| format!("{item:?}: {error}"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// Seconds from a flag, refusing what `Duration` cannot hold (negative, NaN).
pub fn secs(value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow::anyhow!("{value} is not a number of seconds"))
}

impl Args {
    /// The processes whose CPU is counted.
    pub fn watch(&self) -> Watch {
        if let Some(List(pids)) = &self.pids {
            return Watch::Trees(pids.clone());
        }
        match &self.pid_names {
            Some(List(names)) => Watch::Names(names.clone()),
            None if self.postgres => Watch::Names(vec!["orderly".into(), "postgres".into()]),
            None => Watch::Names(vec!["orderly".into()]),
        }
    }

    /// Refuses settings that would make a point meaningless, before anything is created.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.products > 0, "--products must be at least 1");
        anyhow::ensure!(self.customers > 0, "--customers must be at least 1");
        anyhow::ensure!(self.connections > 0, "--connections must be at least 1");
        anyhow::ensure!(
            self.setup_concurrency > 0,
            "--setup-concurrency must be at least 1"
        );
        anyhow::ensure!(self.secs > 0.0, "--secs must be positive");
        anyhow::ensure!(
            self.clients.0.iter().all(|&n| n > 0),
            "--clients: every count must be at least 1"
        );
        anyhow::ensure!(
            self.rates.0.iter().all(|&r| r > 0.0 && r.is_finite()),
            "--rates: every rate must be positive"
        );
        for (flag, value) in [
            ("--warmup-secs", self.warmup_secs),
            ("--open-warmup-secs", self.open_warmup_secs),
            ("--idle-secs", self.idle_secs),
            ("--drain-secs", self.drain_secs),
            ("--hold-grace-secs", self.hold_grace_secs),
            ("--decision-timeout-secs", self.decision_timeout_secs),
            ("--call-timeout-secs", self.call_timeout_secs),
            ("--check-timeout-secs", self.check_timeout_secs),
            ("--ready-timeout-secs", self.ready_timeout_secs),
        ] {
            secs(value).map_err(|error| anyhow::anyhow!("{flag}: {error}"))?;
        }
        Ok(())
    }
}
