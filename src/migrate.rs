//! `orderly migrate`: bring databases up to date without starting anything (the Helm
//! pre-install/pre-upgrade hook runs this).

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use orderly_common::{
    config::{DatabaseArgs, SqliteSync},
    db,
};
use sea_orm_migration::MigratorTrait;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Owner {
    Order,
    Inventory,
    Payment,
    Notification,
    Orchestrator,
}

impl Owner {
    const ALL: [Owner; 5] = [
        Self::Order,
        Self::Inventory,
        Self::Payment,
        Self::Notification,
        Self::Orchestrator,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Order => orderly_order::NAME,
            Self::Inventory => orderly_inventory::NAME,
            Self::Payment => orderly_payment::NAME,
            Self::Notification => orderly_notification::NAME,
            Self::Orchestrator => orderly_orchestrator::NAME,
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct MigrateArgs {
    /// Databases to migrate [default: all, each a SQLite file in the data directory]
    #[arg(value_enum)]
    pub components: Vec<Owner>,

    #[command(flatten)]
    pub database: DatabaseArgs,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let owners = if args.components.is_empty() {
        Owner::ALL.to_vec()
    } else {
        args.components
    };
    if args.database.database_url.is_some() && owners.len() != 1 {
        bail!("--database-url names one database: also name the one component it belongs to");
    }
    for owner in owners {
        let (url, sync) = (
            args.database.url_for(owner.name()),
            args.database.sqlite_sync,
        );
        match owner {
            Owner::Order => up::<orderly_order::Migrator>(&url, sync).await,
            Owner::Inventory => up::<orderly_inventory::Migrator>(&url, sync).await,
            Owner::Payment => up::<orderly_payment::Migrator>(&url, sync).await,
            Owner::Notification => up::<orderly_notification::Migrator>(&url, sync).await,
            Owner::Orchestrator => up::<orderly_orchestrator::Migrator>(&url, sync).await,
        }
        .with_context(|| format!("migrating the {} database", owner.name()))?;
        tracing::info!(component = owner.name(), "database up to date");
    }
    Ok(())
}

async fn up<M: MigratorTrait>(url: &str, sync: SqliteSync) -> anyhow::Result<()> {
    db::connect_and_migrate::<M>(url, sync).await?;
    Ok(())
}
