//! `orderly saga FILE...`: checks saga definitions as the orchestrator does at start-up (each
//! file valid, the versions one saga's), and prints each version's steps, so a deployment can
//! check its saga before it rolls out.

use std::path::PathBuf;

use anyhow::Context;
use orderly_saga::Versions;

pub fn check(files: &[PathBuf]) -> anyhow::Result<()> {
    let definitions = files
        .iter()
        .map(|path| orderly_saga::file::load(path))
        .collect::<Result<Vec<_>, _>>()?;
    let versions = Versions::new(definitions).context("saga definitions")?;
    for definition in versions.all() {
        println!(
            "{} v{}: triggered by {} on {}",
            definition.name(),
            definition.version(),
            definition.trigger(),
            definition.topics()[0]
        );
        for (index, step) in definition.steps().iter().enumerate() {
            let undo = match (&step.compensation, step.pivot) {
                (Some(compensation), _) => format!("undone by {}", compensation.rpc_name()),
                (None, true) => "pivot".to_owned(),
                (None, false) => "after the pivot".to_owned(),
            };
            println!(
                "  {}. {} by {}, on {}: {} or {}; {undo}",
                index + 1,
                step.name,
                step.participant,
                step.starts_on,
                step.succeeded_on.join("/"),
                fails(&step.failed_on),
            );
        }
    }
    Ok(())
}

fn fails(events: &[String]) -> String {
    if events.is_empty() {
        "never fails".to_owned()
    } else {
        events.join("/")
    }
}
