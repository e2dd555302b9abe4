//! `orderly` child processes that are killed when the test ends, pass or fail.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
};

pub const BIN: &str = env!("CARGO_BIN_EXE_orderly");

pub fn show_logs() -> bool {
    std::env::var_os("TEST_LOG").is_some_and(|value| value != "0")
}

/// A running `orderly` process.
pub struct Orderly {
    child: Child,
    args: Vec<String>,
    /// Where its output goes, when to a file.
    log: Option<PathBuf>,
}

impl Orderly {
    /// Starts `orderly <args>` with a clean `ORDERLY_*` and `OTEL_*` environment plus `envs`
    /// (metrics are off unless `envs` sets `ORDERLY_METRICS_ADDR`).
    /// Its output goes to a file in `data_dir`, so that a test whose process stopped can say
    /// why (TEST_LOG=1 shows it live instead).
    pub fn spawn(args: &[&str], envs: &[(&str, &str)], data_dir: &Path) -> Self {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let log = (!show_logs()).then(|| {
            let number = STARTED.fetch_add(1, Ordering::Relaxed);
            data_dir.join(format!(
                "orderly-{}-{number}.log",
                args.first().unwrap_or(&"")
            ))
        });
        Self::spawn_logging(args, envs, data_dir, log.as_deref())
    }

    /// Like [`Orderly::spawn`], with stdout and stderr written to `log` when given.
    pub fn spawn_logging(
        args: &[&str],
        envs: &[(&str, &str)],
        data_dir: &Path,
        log: Option<&Path>,
    ) -> Self {
        let mut command = Command::new(BIN);
        command.args(args).current_dir(data_dir);
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("ORDERLY_") || key_text.starts_with("OTEL_") {
                command.env_remove(key);
            }
        }
        command
            .env("ORDERLY_DATA_DIR", data_dir)
            .env("ORDERLY_METRICS_ADDR", "off")
            .envs(envs.iter().copied());
        if let Some(log) = log {
            let file = std::fs::File::create(log).expect("log file");
            let copy = file.try_clone().expect("log file handle");
            command.stdout(file).stderr(copy);
        } else if !show_logs() {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {BIN}: {error}"));
        Self {
            child,
            args: args.iter().map(|arg| arg.to_string()).collect(),
            log: log.map(Path::to_owned),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the process gets no chance to clean up, like a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP or SIGCONT: the process freezes (or thaws) with its sockets open, like a long
    /// garbage-collection pause or a hung host.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status();
        assert!(
            sent.is_ok_and(|status| status.success()),
            "cannot signal {:?}",
            self.args
        );
    }

    /// SIGTERM, then waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        assert!(
            sent.is_ok_and(|status| status.success()),
            "cannot signal {:?}",
            self.args
        );
        self.child.wait().is_ok_and(|status| status.success())
    }

    /// How the process ended, if it has (without waiting).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Fails the test if the process has already exited (it should be serving).
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "orderly {:?} exited early with {status}; {}",
                self.args,
                self.last_words()
            );
        }
    }

    /// The end of what the process wrote, for a failure message.
    pub fn last_words(&self) -> String {
        const TAIL: usize = 40;
        let Some(text) = self
            .log
            .as_ref()
            .and_then(|log| std::fs::read_to_string(log).ok())
        else {
            return "rerun with TEST_LOG=1 to see its output".to_owned();
        };
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(TAIL)..].join("\n");
        format!("its last {TAIL} lines:\n{tail}")
    }
}

impl Drop for Orderly {
    fn drop(&mut self) {
        self.kill();
    }
}
