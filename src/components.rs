//! Every component the `orderly` binary runs, in one table: its name, default port, API, the
//! components it calls, and how to migrate its database and run it inside `orderly dev`.
//! `orderly dev`, `orderly migrate` and `orderly components` iterate it, and so does the tests'
//! harness; a new component is a new entry (plus its subcommand in [`crate::Command`]).

use std::net::SocketAddr;

use futures::future::BoxFuture;
use orderly_common::{
    Shutdown,
    auth::Rules,
    component::ComponentError,
    config::{Callee, Callees, DependencyArgs, ServiceConfig},
    db,
    grpc::AsksOrchestrator,
    idempotency::IdempotencyArgs,
};
use sea_orm_migration::{MigratorTrait, sea_orm::DbErr};

/// One component of the system.
pub struct Component {
    pub name: &'static str,
    pub default_port: u16,
    /// The gRPC service it serves.
    pub api: &'static str,
    /// The components it calls (their endpoints are flags of its subcommand).
    pub calls: &'static [Callee],
    /// Who may call each RPC of its API, when auth is on.
    pub access: Rules,
    /// Brings its database (at a URL) up to date.
    pub migrate: fn(String, db::Pool) -> BoxFuture<'static, Result<(), DbErr>>,
    /// Runs it inside `orderly dev`, with defaults for everything `dev` does not set.
    pub run_in_dev: fn(InDev) -> BoxFuture<'static, Result<(), ComponentError>>,
}

/// What `orderly dev` gives each component it runs.
pub struct InDev {
    pub service: ServiceConfig,
    /// Where every component of the process listens.
    pub addrs: Vec<(&'static str, SocketAddr)>,
    pub saga: orderly_orchestrator::SagaArgs,
    pub shutdown: Shutdown,
}

impl InDev {
    fn dependencies<C: Callees>(&self) -> DependencyArgs<C> {
        DependencyArgs::at(|name| {
            let found = self.addrs.iter().find(|(component, _)| *component == name);
            found.map(|(_, addr)| *addr)
        })
    }
}

pub const ALL: [Component; 6] = [
    Component {
        name: orderly_order::NAME,
        default_port: orderly_order::DEFAULT_PORT,
        api: orderly_proto::order::v1::order_service_server::SERVICE_NAME,
        calls: <orderly_order::Calls as Callees>::CALLEES,
        access: orderly_order::access::RULES,
        migrate: migrate::<orderly_order::Migrator>,
        run_in_dev: order,
    },
    Component {
        name: orderly_inventory::NAME,
        default_port: orderly_inventory::DEFAULT_PORT,
        api: orderly_proto::inventory::v1::inventory_service_server::SERVICE_NAME,
        calls: <AsksOrchestrator as Callees>::CALLEES,
        access: orderly_inventory::access::RULES,
        migrate: migrate::<orderly_inventory::Migrator>,
        run_in_dev: inventory,
    },
    Component {
        name: orderly_payment::NAME,
        default_port: orderly_payment::DEFAULT_PORT,
        api: orderly_proto::payment::v1::payment_service_server::SERVICE_NAME,
        calls: <AsksOrchestrator as Callees>::CALLEES,
        access: orderly_payment::access::RULES,
        migrate: migrate::<orderly_payment::Migrator>,
        run_in_dev: payment,
    },
    Component {
        name: orderly_notification::NAME,
        default_port: orderly_notification::DEFAULT_PORT,
        api: orderly_proto::notification::v1::notification_service_server::SERVICE_NAME,
        calls: &[],
        access: orderly_notification::access::RULES,
        migrate: migrate::<orderly_notification::Migrator>,
        run_in_dev: notification,
    },
    Component {
        name: orderly_orchestrator::NAME,
        default_port: orderly_orchestrator::DEFAULT_PORT,
        api: orderly_proto::saga::v1::saga_service_server::SERVICE_NAME,
        calls: <orderly_orchestrator::Calls as Callees>::CALLEES,
        access: orderly_orchestrator::access::RULES,
        migrate: migrate::<orderly_orchestrator::Migrator>,
        run_in_dev: orchestrator,
    },
    Component {
        name: orderly_query::NAME,
        default_port: orderly_query::DEFAULT_PORT,
        api: orderly_proto::query::v1::order_view_service_server::SERVICE_NAME,
        calls: &[],
        access: orderly_query::access::RULES,
        migrate: migrate::<orderly_query::Migrator>,
        run_in_dev: query,
    },
];

/// The component called `name`.
pub fn find(name: &str) -> Option<&'static Component> {
    ALL.iter().find(|component| component.name == name)
}

/// Every component's name.
pub fn names() -> impl Iterator<Item = &'static str> {
    ALL.iter().map(|component| component.name)
}

fn migrate<M: MigratorTrait>(url: String, pool: db::Pool) -> BoxFuture<'static, Result<(), DbErr>> {
    Box::pin(async move { db::connect_and_migrate::<M>(&url, pool).await.map(drop) })
}

fn order(dev: InDev) -> BoxFuture<'static, Result<(), ComponentError>> {
    Box::pin(async move {
        let config = orderly_order::Config {
            dependencies: dev.dependencies(),
            service: dev.service,
            watch_recheck_ms: orderly_order::DEFAULT_WATCH_RECHECK_MS,
            admission_max_wait_ms: orderly_order::DEFAULT_ADMISSION_MAX_WAIT_MS,
            admission_floor: orderly_order::DEFAULT_ADMISSION_FLOOR,
            idempotency: IdempotencyArgs::default(),
        };
        orderly_order::run(&config, dev.shutdown).await
    })
}

fn inventory(dev: InDev) -> BoxFuture<'static, Result<(), ComponentError>> {
    Box::pin(async move {
        let config = orderly_inventory::Config {
            dependencies: dev.dependencies(),
            service: dev.service,
            idempotency: IdempotencyArgs::default(),
        };
        orderly_inventory::run(&config, dev.shutdown).await
    })
}

fn payment(dev: InDev) -> BoxFuture<'static, Result<(), ComponentError>> {
    Box::pin(async move {
        let config = orderly_payment::Config {
            dependencies: dev.dependencies(),
            service: dev.service,
            idempotency: IdempotencyArgs::default(),
        };
        orderly_payment::run(&config, dev.shutdown).await
    })
}

fn notification(dev: InDev) -> BoxFuture<'static, Result<(), ComponentError>> {
    Box::pin(async move {
        let config = orderly_notification::Config {
            service: dev.service,
            notifications_file: None,
            notifications_webhook: None,
        };
        orderly_notification::run(&config, dev.shutdown).await
    })
}

fn query(dev: InDev) -> BoxFuture<'static, Result<(), ComponentError>> {
    Box::pin(async move {
        let config = orderly_query::Config {
            service: dev.service,
            strict_wait_ms: orderly_query::DEFAULT_STRICT_WAIT_MS,
        };
        orderly_query::run(&config, dev.shutdown).await
    })
}

fn orchestrator(dev: InDev) -> BoxFuture<'static, Result<(), ComponentError>> {
    Box::pin(async move {
        let config = orderly_orchestrator::Config {
            dependencies: dev.dependencies(),
            service: dev.service,
            saga: dev.saga,
        };
        orderly_orchestrator::run(&config, dev.shutdown).await
    })
}

/// `orderly components`: the table.
pub fn print() {
    println!("{:<14} {:<6} {:<46} calls", "component", "port", "api");
    for component in &ALL {
        let calls: Vec<&str> = component.calls.iter().map(|callee| callee.name).collect();
        let line = format!(
            "{:<14} {:<6} {:<46} {}",
            component.name,
            component.default_port,
            component.api,
            calls.join(", ")
        );
        println!("{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_of_every_component_has_a_rule() {
        for component in &ALL {
            let found = orderly_common::auth::mismatches(component.access, component.api);
            assert!(found.is_empty(), "{}: {found:?}", component.name);
        }
    }

    #[test]
    fn certificates_can_name_every_component() {
        let mut names: Vec<&str> = names().collect();
        let mut known = orderly_common::auth::COMPONENTS.to_vec();
        names.sort_unstable();
        known.sort_unstable();
        assert_eq!(names, known);
    }
}
