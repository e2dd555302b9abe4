//! A throwaway PostgreSQL server from Debian's binaries, on a free loopback port, in a temp
//! directory, run as the `postgres` user when the tests run as root (PostgreSQL refuses root).
//! Each test gets its own fresh database.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

use super::free_port;

const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    options: String,
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// A PostgreSQL tool, to be run as `postgres` when we are root.
fn tool(name: &str) -> Command {
    let program = Path::new(BIN_DIR).join(name);
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(name: &str, args: &[&str]) {
    let mut command = tool(name);
    command.args(args).stdin(Stdio::null());
    if !super::process::show_logs() {
        command.stdout(Stdio::null());
    }
    let status = command.status().unwrap_or_else(|error| {
        panic!("cannot run {name}: {error} (is Debian's postgresql-15 installed?)")
    });
    assert!(status.success(), "{name} {args:?} failed with {status}");
}

impl Postgres {
    /// Gives each component a fresh database of this server (for [`super::Options`]).
    pub fn databases(self: &std::rc::Rc<Self>) -> super::DatabaseUrls {
        let server = self.clone();
        Box::new(move |_| Some(server.fresh_database()))
    }

    /// Initializes and starts a new server; it is stopped and deleted on drop.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("orderly-pg-")
            .tempdir()
            .expect("temp dir");
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status();
            assert!(
                status.is_ok_and(|status| status.success()),
                "cannot hand {} to postgres",
                dir.path().display()
            );
        }
        let port = free_port();
        let data = dir.path().join("data");
        let data = data.to_str().expect("utf-8 temp path");
        let socket_dir = dir.path().to_str().expect("utf-8 temp path");
        run(
            "initdb",
            &[
                "-D",
                data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        // Room for fifteen replicas' pools (16 connections each, and one to listen): the
        // default of 100 turned a replica away at start-up once their pools had grown.
        let options = format!(
            "-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c max_connections=300"
        );
        let postgres = Self { dir, port, options };
        postgres.start_again();
        postgres
    }

    /// Starts the (stopped) server again on the same port and data, waiting until it accepts.
    pub fn start_again(&self) {
        let data = self.data_dir();
        let log = self.dir.path().join("postgres.log");
        run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8 temp path"),
                "-o",
                &self.options,
                "-l",
                log.to_str().expect("utf-8"),
                "-w",
                "start",
            ],
        );
    }

    /// `pg_ctl stop -m immediate`: every connection is cut at once, as in a crash.
    pub fn stop_immediately(&self) {
        let data = self.data_dir();
        run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8 temp path"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Creates a fresh database and returns its URL.
    pub fn fresh_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "orderly_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                &name,
            ],
        );
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = tool("pg_ctl")
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "stop",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
