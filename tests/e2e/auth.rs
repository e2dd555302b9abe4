//! Only who may, can (issue 14). With TLS and auth on, every RPC refuses a caller with no token,
//! an expired token, a token for another audience, a customer token acting for another customer
//! and a token of the wrong role, with UNAUTHENTICATED or PERMISSION_DENIED saying which, and
//! nothing is written; the compensation RPCs take the orchestrator's certificate and nothing
//! else. Meanwhile the saga runs: the components call each other with their certificates.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use orderly::secure::{Authority, TokenIssuer};
use orderly_common::auth::Role;
use orderly_proto::{
    inventory::v1::{
        BatchGetProductsRequest, GetProductRequest, ListProductsRequest, ListReservationsRequest,
        ReleaseReservationRequest, ReservationStatus, RestockRequest, UpsertProductRequest,
        inventory_service_client::InventoryServiceClient,
    },
    notification::v1::{
        ListNotificationsRequest, notification_service_client::NotificationServiceClient,
    },
    order::v1::{
        GetOrderRequest, ListOrdersRequest, OrderStatus, WatchCustomerOrdersRequest,
        WatchOrderRequest, order_service_client::OrderServiceClient,
    },
    payment::v1::{
        DepositRequest, GetAccountRequest, ListPaymentsRequest, OpenAccountRequest,
        RefundPaymentRequest, payment_service_client::PaymentServiceClient,
    },
    query::v1::{
        GetOrderViewRequest, PauseProjectionRequest, RebuildReadModelRequest,
        ResumeProjectionRequest, order_view_service_client::OrderViewServiceClient,
    },
    saga::v1::{
        DiscardDeadLetterRequest, GetDeadLetterRequest, GetSagaRequest, ListDeadLettersRequest,
        ListSagasRequest, RedriveDeadLettersRequest, ResolveSagaRequest, RetrySagaRequest,
        saga_service_client::SagaServiceClient,
    },
};
use tonic::{
    Code, Status,
    transport::{Channel, Identity},
};

use crate::support::{
    Options, System, TestChannel, invariants,
    orders::{order_request, place, seed, usd},
    prometheus::scrape,
    quiet,
    tls::{self, Bearer},
};

/// Every RPC, called with requests that would change something if let through.
const RPCS: [&str; 30] = [
    "UpsertProduct",
    "Restock",
    "GetProduct",
    "BatchGetProducts",
    "ListProducts",
    "ReleaseReservation",
    "ListReservations",
    "OpenAccount",
    "Deposit",
    "GetAccount",
    "RefundPayment",
    "ListPayments",
    "PlaceOrder",
    "GetOrder",
    "ListOrders",
    "WatchOrder",
    "WatchCustomerOrders",
    "ListNotifications",
    "GetSaga",
    "ListSagas",
    "RetrySaga",
    "ResolveSaga",
    "ListDeadLetters",
    "GetDeadLetter",
    "RedriveDeadLetters",
    "DiscardDeadLetter",
    "GetOrderView",
    "PauseProjection",
    "ResumeProjection",
    "RebuildReadModel",
];

/// What a customer's token may call for its own customer (and is refused for another's).
const CUSTOMERS_OWN: [&str; 9] = [
    "GetAccount",
    "ListPayments",
    "PlaceOrder",
    "GetOrder",
    "ListOrders",
    "WatchOrder",
    "WatchCustomerOrders",
    "ListNotifications",
    "GetOrderView",
];

/// What anyone signed in may call: the catalogue.
const CATALOGUE_READS: [&str; 3] = ["GetProduct", "BatchGetProducts", "ListProducts"];

/// What the catalogue role may call.
const CATALOG_ROLE: [&str; 6] = [
    "UpsertProduct",
    "Restock",
    "GetProduct",
    "BatchGetProducts",
    "ListProducts",
    "ListReservations",
];

/// Calls `rpc` through `channels` (one per component), acting on alice and her order.
struct Caller<'a> {
    system: &'a System,
    ca: PathBuf,
    bearer: Bearer,
    identity: Option<Identity>,
    order_id: String,
}

impl Caller<'_> {
    fn channel(&self, component: &str) -> TestChannel {
        let mut config = tls::trusting(&self.ca);
        if let Some(identity) = &self.identity {
            config = config.identity(identity.clone());
        }
        let channel = Channel::from_shared(format!("https://{}", self.system.addr(component)))
            .unwrap()
            .tls_config(config)
            .unwrap()
            .connect_lazy();
        TestChannel::new(channel, self.bearer.clone())
    }

    async fn call(&self, rpc: &str) -> Result<(), Status> {
        let order_id = self.order_id.clone();
        let mut inventory = InventoryServiceClient::new(self.channel("inventory"));
        let mut payment = PaymentServiceClient::new(self.channel("payment"));
        let mut orders = OrderServiceClient::new(self.channel("order"));
        let mut notifications = NotificationServiceClient::new(self.channel("notification"));
        let mut sagas = SagaServiceClient::new(self.channel("orchestrator"));
        let mut views = OrderViewServiceClient::new(self.channel("query"));
        let alice = || "alice".to_owned();
        match rpc {
            "UpsertProduct" => inventory
                .upsert_product(UpsertProductRequest {
                    sku: "mug".into(),
                    name: "A mug for a cent".into(),
                    unit_price: usd(1),
                })
                .await
                .map(drop),
            "Restock" => inventory
                .restock(RestockRequest {
                    sku: "mug".into(),
                    quantity: 1_000,
                    idempotency_key: String::new(),
                })
                .await
                .map(drop),
            "GetProduct" => (inventory.get_product(GetProductRequest { sku: "mug".into() }))
                .await
                .map(drop),
            "BatchGetProducts" => inventory
                .batch_get_products(BatchGetProductsRequest {
                    skus: vec!["mug".into()],
                })
                .await
                .map(drop),
            "ListProducts" => (inventory.list_products(ListProductsRequest::default()))
                .await
                .map(drop),
            "ReleaseReservation" => inventory
                .release_reservation(ReleaseReservationRequest {
                    order_id,
                    reason: "give it back".into(),
                })
                .await
                .map(drop),
            "ListReservations" => (inventory.list_reservations(ListReservationsRequest::default()))
                .await
                .map(drop),
            "OpenAccount" => payment
                .open_account(OpenAccountRequest {
                    customer_id: "mallory".into(),
                    currency: "USD".into(),
                })
                .await
                .map(drop),
            "Deposit" => payment
                .deposit(DepositRequest {
                    customer_id: alice(),
                    amount: usd(1_000_000),
                    idempotency_key: String::new(),
                })
                .await
                .map(drop),
            "GetAccount" => payment
                .get_account(GetAccountRequest {
                    customer_id: alice(),
                })
                .await
                .map(drop),
            "RefundPayment" => payment
                .refund_payment(RefundPaymentRequest {
                    order_id,
                    reason: "give it back".into(),
                })
                .await
                .map(drop),
            "ListPayments" => payment
                .list_payments(ListPaymentsRequest {
                    customer_id: alice(),
                    ..Default::default()
                })
                .await
                .map(drop),
            "PlaceOrder" => (orders.place_order(order_request("alice", "mug", 1, "")))
                .await
                .map(drop),
            "GetOrder" => (orders.get_order(GetOrderRequest { order_id }))
                .await
                .map(drop),
            "ListOrders" => orders
                .list_orders(ListOrdersRequest {
                    customer_id: alice(),
                    ..Default::default()
                })
                .await
                .map(drop),
            "WatchOrder" => (orders.watch_order(WatchOrderRequest { order_id }))
                .await
                .map(drop),
            "WatchCustomerOrders" => orders
                .watch_customer_orders(WatchCustomerOrdersRequest {
                    customer_id: alice(),
                })
                .await
                .map(drop),
            "ListNotifications" => notifications
                .list_notifications(ListNotificationsRequest {
                    customer_id: alice(),
                    ..Default::default()
                })
                .await
                .map(drop),
            "GetSaga" => (sagas.get_saga(GetSagaRequest { order_id }))
                .await
                .map(drop),
            "ListSagas" => (sagas.list_sagas(ListSagasRequest::default()))
                .await
                .map(drop),
            "RetrySaga" => (sagas.retry_saga(RetrySagaRequest { order_id }))
                .await
                .map(drop),
            "ResolveSaga" => sagas
                .resolve_saga(ResolveSagaRequest {
                    order_id,
                    step: "authorize_payment".into(),
                    note: "refunded by hand".into(),
                })
                .await
                .map(drop),
            "ListDeadLetters" => (sagas.list_dead_letters(ListDeadLettersRequest::default()))
                .await
                .map(drop),
            "GetDeadLetter" => (sagas.get_dead_letter(GetDeadLetterRequest { id: order_id }))
                .await
                .map(drop),
            "RedriveDeadLetters" => sagas
                .redrive_dead_letters(RedriveDeadLettersRequest {
                    topic: "orderly.sagas.v1".into(),
                    note: "replay everything".into(),
                    ..Default::default()
                })
                .await
                .map(drop),
            "DiscardDeadLetter" => sagas
                .discard_dead_letter(DiscardDeadLetterRequest {
                    id: order_id,
                    reason: "hide the evidence".into(),
                })
                .await
                .map(drop),
            "GetOrderView" => (views.get_order_view(GetOrderViewRequest {
                order_id,
                ..Default::default()
            }))
            .await
            .map(drop),
            "PauseProjection" => (views.pause_projection(PauseProjectionRequest {}))
                .await
                .map(drop),
            "ResumeProjection" => (views.resume_projection(ResumeProjectionRequest {}))
                .await
                .map(drop),
            "RebuildReadModel" => (views.rebuild_read_model(RebuildReadModelRequest {}))
                .await
                .map(drop),
            other => panic!("no RPC {other}"),
        }
    }
}

/// `rpc` is refused with `code`, the message containing `says`.
async fn refused(caller: &Caller<'_>, who: &str, rpc: &str, code: Code, says: &str) {
    let status = match caller.call(rpc).await {
        Ok(()) => panic!("{who} called {rpc}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "{who} calling {rpc}: {status:?}");
    assert!(
        status.message().contains(says),
        "{who} calling {rpc}: {:?} does not say {says:?}",
        status.message()
    );
}

fn caller<'a>(system: &'a System, secure: &Path, token: Option<&str>, order: &str) -> Caller<'a> {
    Caller {
        system,
        ca: secure.join("ca.pem"),
        bearer: Bearer::of(token).unwrap(),
        identity: None,
        order_id: order.to_owned(),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rpc_refuses_who_may_not_call_it_and_nothing_is_written() {
    let system = System::start(Options {
        auth: true,
        ..Options::default()
    })
    .await;
    // The harness acts with every role: the saga runs, the components calling one another with
    // their certificates.
    let initial = seed(
        &system,
        &[("mug", 1_299, 5)],
        &[("alice", 100_000), ("bob", 100_000)],
    )
    .await;
    let order = place(&system, order_request("alice", "mug", 1, "")).await;
    let orders = quiet::settle(&system).await;
    assert_eq!(orders[0].status(), OrderStatus::Confirmed);
    let id = order.order_id.as_str();

    let secure = system.dir.path().join("secure");
    let issuer: TokenIssuer = Authority::open(&secure).unwrap().token_issuer().unwrap();
    let every = [Role::Customer, Role::Catalog, Role::Finance, Role::Operator];
    let hour = Duration::from_secs(3600);
    let expired = issuer
        .token_at("test", &every, now() - 7_200, now() - 3_600, "orderly")
        .unwrap();
    let elsewhere = issuer
        .token_at("test", &every, now(), now() + 3_600, "another-service")
        .unwrap();
    let bob = issuer.token("bob", &[Role::Customer], hour).unwrap();
    let catalog = issuer.token("shopkeeper", &[Role::Catalog], hour).unwrap();
    let operator = issuer.token("ops", &every, hour).unwrap();

    for rpc in RPCS {
        let anonymous = caller(&system, &secure, None, id);
        let code = Code::Unauthenticated;
        refused(&anonymous, "no token", rpc, code, "no credentials").await;
        let late = caller(&system, &secure, Some(&expired), id);
        refused(&late, "an expired token", rpc, code, "expired").await;
        let astray = caller(&system, &secure, Some(&elsewhere), id);
        refused(&astray, "another audience's token", rpc, code, "audience").await;

        let bob = caller(&system, &secure, Some(&bob), id);
        if CUSTOMERS_OWN.contains(&rpc) {
            let says = "acts for its own customer only";
            refused(&bob, "bob", rpc, Code::PermissionDenied, says).await;
        } else if !CATALOGUE_READS.contains(&rpc) {
            refused(&bob, "bob", rpc, Code::PermissionDenied, "may not call").await;
        }
        if !CATALOG_ROLE.contains(&rpc) {
            let shopkeeper = caller(&system, &secure, Some(&catalog), id);
            let says = "may not call";
            refused(
                &shopkeeper,
                "the catalogue",
                rpc,
                Code::PermissionDenied,
                says,
            )
            .await;
        }
    }
    // The compensations take the orchestrator's certificate, not a role nor another component.
    // (Issuing payment a certificate rotates its own, which it takes in its stride.)
    let payment = Authority::open(&secure).unwrap().issue("payment").unwrap();
    let mut as_payment = caller(&system, &secure, None, id);
    as_payment.identity = Some(Identity::from_pem(
        std::fs::read(&payment.cert).unwrap(),
        std::fs::read(&payment.key).unwrap(),
    ));
    let operator = caller(&system, &secure, Some(&operator), id);
    for rpc in ["ReleaseReservation", "RefundPayment"] {
        let says = "the certificate of orchestrator";
        refused(&operator, "an operator", rpc, Code::PermissionDenied, says).await;
        refused(
            &as_payment,
            "payment",
            rpc,
            Code::PermissionDenied,
            "component payment",
        )
        .await;
    }

    // Let through: alice reads her own order; the catalogue reads its stock.
    let alice = issuer.token("alice", &[Role::Customer], hour).unwrap();
    let alice = caller(&system, &secure, Some(&alice), id);
    for rpc in CUSTOMERS_OWN.iter().filter(|rpc| **rpc != "PlaceOrder") {
        alice
            .call(rpc)
            .await
            .unwrap_or_else(|e| panic!("alice {rpc}: {e:?}"));
    }
    let shopkeeper = caller(&system, &secure, Some(&catalog), id);
    shopkeeper.call("ListReservations").await.unwrap();

    // Nothing written: the price, the stock, the money, the order, its saga are as they were.
    let orders = quiet::settle(&system).await;
    assert_eq!(orders.len(), 1, "no order placed by anyone refused");
    invariants::check(&system, &initial, &orders).await;
    let mut inventory =
        InventoryServiceClient::new(crate::support::channel(system.addr("inventory")));
    let mug = inventory
        .get_product(GetProductRequest { sku: "mug".into() })
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    assert_eq!(mug.unit_price, usd(1_299));
    let reservations = inventory
        .list_reservations(ListReservationsRequest {
            order_id: id.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .reservations;
    assert_eq!(reservations[0].status(), ReservationStatus::Committed);
    let mut payment = PaymentServiceClient::new(crate::support::channel(system.addr("payment")));
    let mallory = payment
        .get_account(GetAccountRequest {
            customer_id: "mallory".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(mallory.code(), Code::NotFound, "no account opened");
    let refusals = scrape(system.metrics_addr("order"))
        .await
        .sum("orderly_auth_refused_total", &[]);
    // Each of its five RPCs refused five times: no token, expired, another audience, bob's, the
    // catalogue's.
    assert_eq!(refusals, 5.0 * 5.0, "refusals counted");
}
