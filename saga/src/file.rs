//! Definitions as files, so a deployment declares its saga without rebuilding the orchestrator.
//! One TOML file per version; its fields are the builder's calls, and it is validated by the
//! same rules:
//!
//! ```toml
//! name = "order"
//! version = 2
//! trigger_topic = "orderly.orders.v1"
//!
//! [[step]]
//! name = "reserve_inventory"
//! by = "inventory"
//! starts_on = "OrderPlaced"
//! reports_to = "orderly.inventory.v1"
//! succeeds_on = ["InventoryReserved"]
//! fails_on = ["InventoryRejected"]
//! compensated_by = "/orderly.inventory.v1.InventoryService/ReleaseReservation"
//! timeout_ms = 30000                 # optional
//! retry = { max_attempts = 5, initial_backoff_ms = 200, max_backoff_ms = 10000 }  # optional
//! # pivot = true                     # on the pivot step
//! ```

use std::{path::Path, time::Duration};

use serde::Deserialize;

use crate::{Definition, DefinitionError, RetryPolicy};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read saga definition {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("saga definition {path} is not valid: {error}")]
    Syntax {
        path: String,
        error: toml::de::Error,
    },
    #[error("saga definition {path}: {error}")]
    Invalid {
        path: String,
        error: Box<DefinitionError>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SagaFile {
    name: String,
    version: u32,
    trigger_topic: String,
    #[serde(default)]
    step: Vec<StepFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    name: String,
    by: String,
    starts_on: String,
    reports_to: String,
    succeeds_on: Vec<String>,
    #[serde(default)]
    fails_on: Vec<String>,
    compensated_by: Option<String>,
    #[serde(default)]
    pivot: bool,
    timeout_ms: Option<u64>,
    retry: Option<RetryFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryFile {
    max_attempts: u32,
    initial_backoff_ms: u64,
    max_backoff_ms: u64,
}

/// Reads and validates the definition in `path`.
pub fn load(path: &Path) -> Result<Definition, FileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| FileError::Read {
        path: shown.clone(),
        error,
    })?;
    parse(&shown, &text)
}

/// Reads and validates a definition from `text` (`path` names it in errors).
pub fn parse(path: &str, text: &str) -> Result<Definition, FileError> {
    let file: SagaFile = toml::from_str(text).map_err(|error| FileError::Syntax {
        path: path.to_owned(),
        error,
    })?;
    let mut builder = Definition::named(file.name, file.version).trigger_topic(file.trigger_topic);
    for step in file.step {
        builder = builder
            .step(step.name)
            .by(step.by)
            .starts_on(step.starts_on)
            .reports_to(step.reports_to);
        for event in step.succeeds_on {
            builder = builder.succeeds_on(event);
        }
        for event in step.fails_on {
            builder = builder.fails_on(event);
        }
        if let Some(method) = step.compensated_by {
            builder = builder.compensated_by(method);
        }
        if step.pivot {
            builder = builder.pivot();
        }
        if let Some(timeout) = step.timeout_ms {
            builder = builder.timeout(Duration::from_millis(timeout));
        }
        if let Some(retry) = step.retry {
            builder = builder.retry(RetryPolicy {
                max_attempts: retry.max_attempts,
                initial_backoff: Duration::from_millis(retry.initial_backoff_ms),
                max_backoff: Duration::from_millis(retry.max_backoff_ms),
            });
        }
    }
    builder.build().map_err(|error| FileError::Invalid {
        path: path.to_owned(),
        error: Box::new(error),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Rule, order::V1};

    #[test]
    fn settings_are_read() {
        let tuned = V1.replace(
            "fails_on = [\"PaymentDeclined\"]",
            "fails_on = [\"PaymentDeclined\"]\ntimeout_ms = 5000\nretry = { max_attempts = 3, initial_backoff_ms = 100, max_backoff_ms = 1000 }",
        );
        let parsed = parse("tuned", &tuned).unwrap();
        assert_eq!(parsed.steps()[1].timeout, Some(Duration::from_secs(5)));
        assert_eq!(parsed.steps()[1].retry.map(|r| r.max_attempts), Some(3));
        assert_eq!(parsed.steps()[0].timeout, None);
    }

    #[test]
    fn typos_and_broken_rules_are_refused_with_what_is_wrong() {
        let typo = V1.replace("fails_on = [\"PaymentDeclined\"]", "fail_on = []");
        let Err(FileError::Syntax { error, .. }) = parse("typo", &typo) else {
            panic!("an unknown field is refused");
        };
        assert!(error.to_string().contains("fail_on"), "{error}");
        let unchained = V1.replace("starts_on = \"InventoryReserved\"", "starts_on = \"X\"");
        let Err(FileError::Invalid { path, error }) = parse("unchained", &unchained) else {
            panic!("a broken chain is refused");
        };
        assert_eq!(path, "unchained");
        assert_eq!(error.step.as_deref(), Some("authorize_payment"));
        assert!(matches!(error.rule, Rule::ChainBroken { .. }));
    }
}
