//! `orderly migrate`: bring databases up to date without starting anything (the Helm
//! pre-install/pre-upgrade hook runs this).

use anyhow::{Context, bail};
use clap::{Args, builder::PossibleValuesParser};
use orderly_common::config::DatabaseArgs;

use crate::components::{self, Component};

#[derive(Args, Clone, Debug)]
pub struct MigrateArgs {
    /// Databases to migrate, by component [default: all, each a SQLite file in the data
    /// directory]
    #[arg(value_parser = PossibleValuesParser::new(components::names()))]
    pub components: Vec<String>,

    #[command(flatten)]
    pub database: DatabaseArgs,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let owners: Vec<&Component> = if args.components.is_empty() {
        components::ALL.iter().collect()
    } else {
        let named = args.components.iter().map(|name| components::find(name));
        named
            .collect::<Option<_>>()
            .context("an unknown component")?
    };
    if args.database.database_url.is_some() && owners.len() != 1 {
        bail!("--database-url names one database: also name the one component it belongs to");
    }
    for owner in owners {
        let url = args.database.url_for(owner.name);
        (owner.migrate)(url, args.database.pool())
            .await
            .with_context(|| format!("migrating the {} database", owner.name))?;
        tracing::info!(component = owner.name, "database up to date");
    }
    Ok(())
}
