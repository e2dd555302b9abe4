//! Which topic each event travels on: part of the event contract, like the messages. Each
//! producer owns one topic; every topic has a dead-letter topic (`<topic>.dlq`).

/// `OrderPlaced`, from the order service.
pub const ORDERS: &str = "orderly.orders.v1";
/// `InventoryReserved` / `InventoryRejected`, from the inventory service.
pub const INVENTORY: &str = "orderly.inventory.v1";
/// `PaymentAuthorized` / `PaymentDeclined`, from the payment service.
pub const PAYMENTS: &str = "orderly.payments.v1";
/// `SagaConfirmed` / `SagaRejected`, from the orchestrator.
pub const SAGAS: &str = "orderly.sagas.v1";

/// Every topic of Orderly's own events.
pub const DOMAIN: [&str; 4] = [ORDERS, INVENTORY, PAYMENTS, SAGAS];
