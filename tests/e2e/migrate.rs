//! `orderly migrate` brings databases up to date without starting servers (the Helm hook runs
//! it): idempotent, on SQLite and PostgreSQL, with a clear error for an ambiguous request.

use std::process::{Command, Output};

use crate::support::{postgres::Postgres, process::BIN};

fn migrate(args: &[&str], data_dir: &std::path::Path) -> Output {
    Command::new(BIN)
        .arg("migrate")
        .args(args)
        .env_remove("ORDERLY_DATABASE_URL")
        .env("ORDERLY_DATA_DIR", data_dir)
        .output()
        .expect("orderly migrate runs")
}

#[test]
fn migrate_is_idempotent_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let output = migrate(&[], dir.path());
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for component in [
        "order",
        "inventory",
        "payment",
        "notification",
        "orchestrator",
    ] {
        assert!(
            dir.path().join(format!("{component}.db")).exists(),
            "{component}.db"
        );
    }

    let postgres = Postgres::start();
    let url = postgres.fresh_database();
    for _ in 0..2 {
        let output = migrate(&["payment", "--database-url", &url], dir.path());
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Replicas started at once on a fresh PostgreSQL database (no migration job before them)
/// each migrate it at start-up: one at a time, so none trips over a table another is creating.
#[test]
fn migrations_started_at_once_on_postgres_take_turns() {
    let dir = tempfile::tempdir().unwrap();
    let postgres = Postgres::start();
    for component in ["inventory", "orchestrator"] {
        let url = postgres.fresh_database();
        let migrating: Vec<_> = (0..4)
            .map(|_| {
                Command::new(BIN)
                    .args(["migrate", component, "--database-url", &url])
                    .env("ORDERLY_DATA_DIR", dir.path())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("orderly migrate runs")
            })
            .collect();
        for child in migrating {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{component}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

#[test]
fn migrate_refuses_one_url_for_many_databases() {
    let dir = tempfile::tempdir().unwrap();
    let output = migrate(&["--database-url", "sqlite://x.db"], dir.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--database-url names one database"),
        "{stderr}"
    );
}
