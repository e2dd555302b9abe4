//! The admin RPCs work for real against both databases: they write, read back, validate (naming
//! the field and writing nothing) and answer NOT_FOUND for unknown ids.

use orderly_proto::{
    common::v1::{Money, PageRequest},
    inventory::v1::{
        BatchGetProductsRequest, GetProductRequest, ListProductsRequest, ListReservationsRequest,
        ReleaseReservationRequest, RestockRequest, UpsertProductRequest,
        inventory_service_client::InventoryServiceClient,
    },
    notification::v1::{
        ListNotificationsRequest, notification_service_client::NotificationServiceClient,
    },
    order::v1::{
        GetOrderRequest, ListOrdersRequest, OrderItem, PlaceOrderRequest,
        order_service_client::OrderServiceClient,
    },
    payment::v1::{
        DepositRequest, GetAccountRequest, ListPaymentsRequest, OpenAccountRequest,
        RefundPaymentRequest, payment_service_client::PaymentServiceClient,
    },
    saga::v1::{GetSagaRequest, ListSagasRequest, saga_service_client::SagaServiceClient},
};
use tonic::{Code, Status};

use crate::support::{Options, System, channel, postgres::Postgres};

fn usd(amount_minor: i64) -> Option<Money> {
    Some(Money {
        amount_minor,
        currency: "USD".into(),
    })
}

/// Asserts an INVALID_ARGUMENT whose message names `field`.
fn assert_invalid<T: std::fmt::Debug>(result: Result<T, Status>, field: &str) {
    let status = result.expect_err("bad input must be refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains(field),
        "message {:?} should name {field}",
        status.message()
    );
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, Status>) {
    let status = result.expect_err("unknown ids must be refused");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

/// Admin RPCs need no Kafka; the services keep retrying to reach it in the background.
fn without_broker() -> Options {
    Options {
        broker: false,
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_api_on_sqlite() {
    let system = System::start(without_broker()).await;
    exercise_every_api(&system).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_api_on_postgres() {
    let postgres = std::rc::Rc::new(Postgres::start());
    let system = System::start(Options {
        database_url: postgres.databases(),
        ..without_broker()
    })
    .await;
    exercise_every_api(&system).await;
}

async fn exercise_every_api(services: &System) {
    inventory(InventoryServiceClient::new(channel(
        services.addr("inventory"),
    )))
    .await;
    payment(PaymentServiceClient::new(channel(services.addr("payment")))).await;
    read_only_services(services).await;
}

async fn inventory(mut client: InventoryServiceClient<crate::support::TestChannel>) {
    let created = client
        .upsert_product(UpsertProductRequest {
            sku: "mug".into(),
            name: "Mug".into(),
            unit_price: usd(1_299),
        })
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    assert_eq!(
        (created.available, created.reserved, created.sold),
        (0, 0, 0)
    );
    assert_eq!(created.unit_price, usd(1_299));

    client
        .restock(RestockRequest {
            sku: "mug".into(),
            quantity: 7,
            idempotency_key: String::new(),
        })
        .await
        .unwrap();
    let restocked = client
        .restock(RestockRequest {
            sku: "mug".into(),
            quantity: 3,
            idempotency_key: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(restocked.product.unwrap().available, 10);

    // A second upsert changes name and price but never stock.
    client
        .upsert_product(UpsertProductRequest {
            sku: "mug".into(),
            name: "Big mug".into(),
            unit_price: usd(1_499),
        })
        .await
        .unwrap();
    let read = client
        .get_product(GetProductRequest { sku: "mug".into() })
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    assert_eq!(
        (read.name.as_str(), read.unit_price, read.available),
        ("Big mug", usd(1_499), 10)
    );

    // Bad input names the field and writes nothing.
    let bad = |sku: &str, name: &str, unit_price| UpsertProductRequest {
        sku: sku.into(),
        name: name.into(),
        unit_price,
    };
    assert_invalid(client.upsert_product(bad("", "x", usd(1))).await, "sku");
    assert_invalid(
        client.upsert_product(bad("two words", "x", usd(1))).await,
        "sku",
    );
    assert_invalid(
        client.upsert_product(bad("pen", "  ", usd(1))).await,
        "name",
    );
    assert_invalid(
        client.upsert_product(bad("pen", "Pen", None)).await,
        "unit_price",
    );
    assert_invalid(
        client.upsert_product(bad("pen", "Pen", usd(0))).await,
        "unit_price.amount_minor",
    );
    let lowercase = Some(Money {
        amount_minor: 5,
        currency: "usd".into(),
    });
    assert_invalid(
        client.upsert_product(bad("pen", "Pen", lowercase)).await,
        "unit_price.currency",
    );
    assert_invalid(
        client
            .restock(RestockRequest {
                sku: "mug".into(),
                quantity: 0,
                idempotency_key: String::new(),
            })
            .await,
        "quantity",
    );
    assert_not_found(
        client
            .get_product(GetProductRequest { sku: "pen".into() })
            .await,
    );
    let mug = client
        .get_product(GetProductRequest { sku: "mug".into() })
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    assert_eq!(mug.available, 10, "a refused restock must not change stock");

    // Unknown ids.
    assert_not_found(
        client
            .restock(RestockRequest {
                sku: "pen".into(),
                quantity: 1,
                idempotency_key: String::new(),
            })
            .await,
    );
    let unknown_order = uuid::Uuid::new_v4().to_string();
    assert_not_found(
        client
            .release_reservation(ReleaseReservationRequest {
                order_id: unknown_order,
                reason: String::new(),
            })
            .await,
    );
    assert_invalid(
        client
            .release_reservation(ReleaseReservationRequest {
                order_id: "nope".into(),
                reason: String::new(),
            })
            .await,
        "order_id",
    );

    // Paging walks every product exactly once.
    for sku in ["a-1", "b-2", "c-3"] {
        client
            .upsert_product(bad(sku, sku, usd(100)))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = Some(PageRequest {
            page_size: 2,
            page_token: page_token.clone(),
        });
        let reply = client
            .list_products(ListProductsRequest { page })
            .await
            .unwrap()
            .into_inner();
        seen.extend(reply.products.into_iter().map(|product| product.sku));
        if reply.next_page_token.is_empty() {
            break;
        }
        page_token = reply.next_page_token;
    }
    assert_eq!(seen, ["a-1", "b-2", "c-3", "mug"]);
    let bad_token = Some(PageRequest {
        page_size: 2,
        page_token: "zz".into(),
    });
    assert_invalid(
        client
            .list_products(ListProductsRequest { page: bad_token })
            .await,
        "page.page_token",
    );

    // A batch answers the products it finds, once each, and leaves unknown skus out.
    let batch = |skus: &[&str]| BatchGetProductsRequest {
        skus: skus.iter().map(|sku| (*sku).to_owned()).collect(),
    };
    let mut found: Vec<(String, Option<Money>)> = client
        .batch_get_products(batch(&["mug", "pen", "b-2", "mug"]))
        .await
        .unwrap()
        .into_inner()
        .products
        .into_iter()
        .map(|product| (product.sku, product.unit_price))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        found,
        [("b-2".to_owned(), usd(100)), ("mug".to_owned(), usd(1_499))]
    );
    assert_invalid(
        client
            .batch_get_products(batch(&["mug", "two words"]))
            .await,
        "skus[1]",
    );
    assert_invalid(
        client.batch_get_products(batch(&["mug"; 101])).await,
        "skus",
    );

    let reservations = client
        .list_reservations(ListReservationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(reservations.reservations.is_empty());
}

async fn payment(mut client: PaymentServiceClient<crate::support::TestChannel>) {
    let open = |currency: &str| OpenAccountRequest {
        customer_id: "alice".into(),
        currency: currency.into(),
    };
    let opened = client
        .open_account(open("USD"))
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(opened.balance, usd(0));

    let deposit = |amount| DepositRequest {
        customer_id: "alice".into(),
        amount,
        idempotency_key: String::new(),
    };
    client.deposit(deposit(usd(1_500))).await.unwrap();
    let after = client
        .deposit(deposit(usd(500)))
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(after.balance, usd(2_000));

    // Opening again in the same currency is a harmless retry; another currency is a conflict.
    let again = client
        .open_account(open("USD"))
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(again.balance, usd(2_000));
    let conflict = client
        .open_account(open("EUR"))
        .await
        .expect_err("one account per customer");
    assert_eq!(conflict.code(), Code::AlreadyExists);

    // Bad input names the field and writes nothing.
    let euros = Some(Money {
        amount_minor: 100,
        currency: "EUR".into(),
    });
    assert_invalid(client.deposit(deposit(euros)).await, "amount.currency");
    assert_invalid(
        client.deposit(deposit(usd(-5))).await,
        "amount.amount_minor",
    );
    assert_invalid(client.deposit(deposit(None)).await, "amount");
    assert_invalid(client.open_account(open("dollars")).await, "currency");
    assert_invalid(client.open_account(open("XYZ")).await, "currency");
    // An error quotes a short prefix of what it refuses, not the whole input back.
    let huge = "D".repeat(100_000);
    let refused = client.open_account(open(&huge)).await.unwrap_err();
    assert!(refused.message().len() < 200, "{}", refused.message());
    let bad_customer = OpenAccountRequest {
        customer_id: String::new(),
        currency: "USD".into(),
    };
    assert_invalid(client.open_account(bad_customer).await, "customer_id");
    let read = client
        .get_account(GetAccountRequest {
            customer_id: "alice".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        read.account.unwrap().balance,
        usd(2_000),
        "refused deposits must not change the balance"
    );

    // Unknown ids.
    let bob = |amount| DepositRequest {
        customer_id: "bob".into(),
        amount,
        idempotency_key: String::new(),
    };
    assert_not_found(client.deposit(bob(usd(1))).await);
    assert_not_found(
        client
            .get_account(GetAccountRequest {
                customer_id: "bob".into(),
            })
            .await,
    );
    let refund = RefundPaymentRequest {
        order_id: uuid::Uuid::new_v4().to_string(),
        reason: String::new(),
    };
    assert_not_found(client.refund_payment(refund).await);
    let payments = client
        .list_payments(ListPaymentsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(payments.payments.is_empty());
}

async fn read_only_services(services: &System) {
    let unknown = uuid::Uuid::new_v4().to_string();

    let mut orders = OrderServiceClient::new(channel(services.addr("order")));
    assert_not_found(
        orders
            .get_order(GetOrderRequest {
                order_id: unknown.clone(),
            })
            .await,
    );
    assert_invalid(
        orders
            .get_order(GetOrderRequest {
                order_id: "42".into(),
            })
            .await,
        "order_id",
    );
    assert!(
        orders
            .list_orders(ListOrdersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .orders
            .is_empty()
    );
    assert_invalid(
        orders
            .list_orders(ListOrdersRequest {
                status: 99,
                ..Default::default()
            })
            .await,
        "status",
    );
    let place = |customer_id: &str, sku: &str, quantity| PlaceOrderRequest {
        customer_id: customer_id.into(),
        items: vec![OrderItem {
            sku: sku.into(),
            quantity,
        }],
        idempotency_key: String::new(),
    };
    // PlaceOrder validates against the other services' data and stores nothing when refused.
    assert_invalid(
        orders.place_order(place("alice", "mug", 0)).await,
        "items[0].quantity",
    );
    assert_invalid(
        orders.place_order(place("alice", "no-such-sku", 1)).await,
        "items",
    );
    assert_invalid(
        orders.place_order(place("nobody", "mug", 1)).await,
        "customer_id",
    );
    assert!(
        orders
            .list_orders(ListOrdersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .orders
            .is_empty()
    );

    let mut notifications = NotificationServiceClient::new(channel(services.addr("notification")));
    let listed = notifications
        .list_notifications(ListNotificationsRequest::default())
        .await
        .unwrap();
    assert!(listed.into_inner().notifications.is_empty());
    let bad_filter = ListNotificationsRequest {
        order_id: "x".into(),
        ..Default::default()
    };
    assert_invalid(
        notifications.list_notifications(bad_filter).await,
        "order_id",
    );

    let mut sagas = SagaServiceClient::new(channel(services.addr("orchestrator")));
    assert_not_found(sagas.get_saga(GetSagaRequest { order_id: unknown }).await);
    assert!(
        sagas
            .list_sagas(ListSagasRequest::default())
            .await
            .unwrap()
            .into_inner()
            .sagas
            .is_empty()
    );
}
