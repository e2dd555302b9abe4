//! A saga participant that Orderly does not ship, built the way a user adds a step: shipping
//! books a shipment for each authorized payment and cancels it on request. It is made of the
//! shared crate's parts (its own SQLite database with outbox and inbox, a consumer, the relay,
//! a gRPC server) and runs inside the test process, on real sockets and the real broker.
//!
//! What it answers depends on the customer: `nowhere-*` has no delivery address (ShipmentFailed),
//! `slow-*` is never answered (the step's deadline passes), anyone else gets a shipment.

use std::{
    convert::Infallible,
    net::SocketAddr,
    path::Path,
    task::{Context, Poll},
};

use orderly_common::{
    Shutdown,
    component::{self, Started},
    config::{DatabaseArgs, KafkaArgs, ServerArgs, ServiceConfig},
    kafka::{
        envelope::{self, Event, Payload},
        topics,
    },
    messaging::{Handler, HandlerError, outbox},
};
use orderly_proto::{
    events::v1::{SagaFacts, payment_event::Event as Payment},
    saga::v1::CompensateRequest,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement};
use sea_orm_migration::prelude::*;
use tonic::{
    Status,
    body::Body,
    codegen::{BoxFuture, http},
    server::{Grpc, NamedService, UnaryService},
    service::Routes,
};
use tonic_prost::ProstCodec;

/// Where shipping publishes ShipmentBooked / ShipmentFailed.
pub const TOPIC: &str = "orderly.shipping.v1";
const SERVICE: &str = "orderly.test.shipping.v1.Shipping";
/// The compensation RPC, as a saga definition names it.
pub const CANCEL: &str = "/orderly.test.shipping.v1.Shipping/CancelShipment";
/// Only the orchestrator cancels a shipment (a compensation), when auth is on.
const RULES: orderly_common::auth::Rules = &[(
    "CancelShipment",
    orderly_common::auth::Access {
        roles: &[],
        components: &["orchestrator"],
    },
)];

/// The running participant. [`Shipping::stop`] it while the broker still runs: its consumer
/// leaves its group on the way out, and the test's runtime waits for that.
pub struct Shipping {
    pub addr: SocketAddr,
    db: DatabaseConnection,
    shutdown: Shutdown,
    served: tokio::task::JoinHandle<()>,
}

impl Shipping {
    /// Starts shipping on `addr` with its database in `dir`, against the broker at `kafka`.
    pub async fn start(kafka: &str, dir: &Path, addr: SocketAddr) -> Self {
        let config = ServiceConfig {
            server: ServerArgs::on(addr),
            database: DatabaseArgs::in_dir(dir.to_owned()),
            kafka: KafkaArgs::at(kafka),
            shared_producer: None,
        };
        let shutdown = Shutdown::new();
        let mut started: Started =
            component::start::<Migrator>("shipping", addr.port(), &config, &shutdown)
                .await
                .expect("shipping starts");
        let db = started.db.clone();
        started.consume("shipping", [topics::PAYMENTS], Booking);
        let routes = Routes::new(Server { db: db.clone() });
        let served = tokio::spawn(async move {
            let _ = started.serve(SERVICE, routes, RULES, &config).await;
        });
        crate::support::wait_serving(addr).await;
        Self {
            addr,
            db,
            shutdown,
            served,
        }
    }

    /// Stops consuming and serving, and waits until it has.
    pub async fn stop(self) {
        self.shutdown.trigger();
        let _ = self.served.await;
    }

    /// The shipment of `order_id`: BOOKED, CANCELLED, or none.
    pub async fn shipment(&self, order_id: &str) -> Option<String> {
        let row = self
            .db
            .query_one_raw(statement(
                "SELECT status FROM shipments WHERE order_id = ?",
                order_id,
            ))
            .await
            .expect("shipments readable");
        row.map(|row| row.try_get::<String>("", "status").expect("a status"))
    }
}

fn statement(sql: &str, order_id: &str) -> Statement {
    Statement::from_sql_and_values(DbBackend::Sqlite, sql, [order_id.into()])
}

/// Books a shipment for every authorized payment (or says why it cannot).
struct Booking;

impl Handler for Booking {
    async fn handle(&self, txn: &DatabaseTransaction, event: &Event) -> Result<(), HandlerError> {
        let Some(Payload::Payment(Payment::PaymentAuthorized(authorized))) = &event.payload else {
            return Ok(()); // declined payments need no shipment
        };
        let customer = authorized.customer_id.as_str();
        if customer.starts_with("slow") {
            return Ok(()); // never answered: the saga's deadline for this step passes
        }
        let mut facts = SagaFacts {
            customer_id: customer.to_owned(),
            total: authorized.amount.clone(),
            reason: String::new(),
        };
        let order_id = event.order_id.to_string();
        let event_type = if customer.starts_with("nowhere") {
            facts.reason = format!("no delivery address for {customer}");
            "ShipmentFailed"
        } else {
            let book = "INSERT INTO shipments (order_id, status) VALUES (?, 'BOOKED') \
                        ON CONFLICT (order_id) DO NOTHING";
            txn.execute_raw(statement(book, &order_id)).await?;
            "ShipmentBooked"
        };
        let reply = envelope::wrap_foreign(event.order_id, event_type, facts);
        outbox::add(txn, TOPIC, &reply).await?;
        Ok(())
    }
}

/// Shipping's gRPC API: CancelShipment, the step's compensation (idempotent; NOT_FOUND when
/// nothing was booked).
#[derive(Clone)]
struct Server {
    db: DatabaseConnection,
}

impl NamedService for Server {
    const NAME: &'static str = SERVICE;
}

impl tower::Service<http::Request<Body>> for Server {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != CANCEL {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        }
        let cancel = Cancel(self.db.clone());
        Box::pin(async move {
            let mut grpc = Grpc::new(ProstCodec::<(), CompensateRequest>::default());
            Ok(grpc.unary(cancel, request).await)
        })
    }
}

struct Cancel(DatabaseConnection);

impl UnaryService<CompensateRequest> for Cancel {
    type Response = ();
    type Future = BoxFuture<tonic::Response<()>, Status>;

    fn call(&mut self, request: tonic::Request<CompensateRequest>) -> Self::Future {
        let db = self.0.clone();
        Box::pin(async move {
            let order_id = request.into_inner().order_id;
            let cancel = "UPDATE shipments SET status = 'CANCELLED' WHERE order_id = ?";
            let cancelled = db
                .execute_raw(statement(cancel, &order_id))
                .await
                .map_err(|error| Status::unavailable(error.to_string()))?;
            if cancelled.rows_affected() == 0 {
                return Err(Status::not_found(format!(
                    "no shipment for order {order_id}"
                )));
            }
            Ok(tonic::Response::new(()))
        })
    }
}

/// Shipping's schema: the shared outbox, inbox and leases, and its shipments.
struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = orderly_migration_messaging::all();
        migrations.push(Box::new(Shipments));
        migrations
    }
}

struct Shipments;

impl MigrationName for Shipments {
    fn name(&self) -> &str {
        "m0001_shipments"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Shipments {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE shipments (order_id TEXT PRIMARY KEY, status TEXT NOT NULL)",
            )
            .await
            .map(drop)
    }
}
