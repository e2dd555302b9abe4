//! CPU time of the processes under test, from /proc: utime + stime of every watched process,
//! summed over a window. Watched are the processes with given `comm` names, or given processes
//! and their descendants (a script that started the system knows exactly which they are).

use std::{
    collections::{HashMap, HashSet},
    process::Command,
    time::Instant,
};

/// Which processes are under test.
pub enum Watch {
    /// Every process whose /proc/<pid>/comm is one of these.
    Names(Vec<String>),
    /// These processes and everything they started (PostgreSQL's backends, say).
    Trees(Vec<u32>),
}

pub struct Cpu {
    watch: Watch,
    /// Clock ticks per second, the unit of /proc/<pid>/stat times.
    hz: f64,
}

/// Every watched process's CPU ticks at one moment.
pub struct Sample {
    at: Instant,
    ticks: HashMap<u32, u64>,
    /// The bench's own ticks: on a small machine the client competes with the system under test.
    own: u64,
}

/// CPU spent by the watched processes over a window.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    pub cpu_secs: f64,
    pub wall_secs: f64,
    pub processes: usize,
    pub bench_cpu_secs: f64,
}

impl Usage {
    pub fn cores(&self) -> f64 {
        self.cpu_secs / self.wall_secs
    }

    pub fn bench_cores(&self) -> f64 {
        self.bench_cpu_secs / self.wall_secs
    }

    pub fn ms_per(&self, count: u64) -> Option<f64> {
        (count > 0).then(|| self.cpu_secs * 1000.0 / count as f64)
    }
}

/// `getconf CLK_TCK`; 100 (Linux's USER_HZ nearly everywhere) if it cannot be asked.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|hz| *hz > 0.0)
        .unwrap_or(100.0)
}

/// What /proc/<pid>/stat says of a process.
struct Stat {
    parent: u32,
    ticks: u64,
}

/// Parent and utime + stime from /proc/<pid>/stat. The command name (field 2) may hold spaces
/// and parentheses, so fields are counted from the last `)`.
fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state): the parent is field 4, utime 14, stime 15.
    let number = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    Some(Stat {
        parent: u32::try_from(number(4)?).ok()?,
        ticks: number(14)? + number(15)?,
    })
}

fn comm(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(text.trim_end().to_owned())
}

/// Every process now, with what its stat says.
fn processes() -> HashMap<u32, Stat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .collect()
}

/// Whether `pid` is one of `roots` or descends from one.
fn in_trees(pid: u32, roots: &HashSet<u32>, all: &HashMap<u32, Stat>) -> bool {
    let mut at = pid;
    // Bounded: a parent chain is short, and a racing pid reuse must not loop forever.
    for _ in 0..64 {
        if roots.contains(&at) {
            return true;
        }
        match all.get(&at) {
            Some(stat) if stat.parent != 0 && stat.parent != at => at = stat.parent,
            _ => return false,
        }
    }
    false
}

impl Cpu {
    pub fn new(watch: Watch) -> Self {
        Self {
            watch,
            hz: clock_ticks(),
        }
    }

    /// Which processes are counted, for the report.
    pub fn describe(&self) -> String {
        match &self.watch {
            Watch::Names(names) => format!("processes named {}", names.join(", ")),
            Watch::Trees(pids) => {
                let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
                format!("pids {} and their descendants", pids.join(", "))
            }
        }
    }

    pub fn sample(&self) -> Sample {
        let all = processes();
        let ticks = match &self.watch {
            Watch::Names(names) => all
                .iter()
                .filter(|(pid, _)| comm(**pid).is_some_and(|comm| names.contains(&comm)))
                .map(|(pid, stat)| (*pid, stat.ticks))
                .collect(),
            Watch::Trees(roots) => {
                let roots: HashSet<u32> = roots.iter().copied().collect();
                all.iter()
                    .filter(|(pid, _)| in_trees(**pid, &roots, &all))
                    .map(|(pid, stat)| (*pid, stat.ticks))
                    .collect()
            }
        };
        Sample {
            at: Instant::now(),
            ticks,
            own: stat(std::process::id()).map_or(0, |stat| stat.ticks),
        }
    }

    /// What the watched processes spent between two samples. A process started in between
    /// counts whole; one that exited in between is missed (the figure is then a lower bound).
    pub fn usage(&self, from: &Sample, to: &Sample) -> Usage {
        let ticks: u64 = to
            .ticks
            .iter()
            .map(|(pid, after)| after.saturating_sub(from.ticks.get(pid).copied().unwrap_or(0)))
            .sum();
        Usage {
            cpu_secs: ticks as f64 / self.hz,
            wall_secs: to.at.duration_since(from.at).as_secs_f64(),
            processes: to.ticks.len(),
            bench_cpu_secs: to.own.saturating_sub(from.own) as f64 / self.hz,
        }
    }
}
