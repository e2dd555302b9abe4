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

/// `ProductPriced`, from the inventory service, keyed by product.
pub const CATALOGUE: &str = "orderly.catalogue.v1";
/// `AccountOpened`, from the payment service, keyed by customer.
pub const ACCOUNTS: &str = "orderly.accounts.v1";

/// Every topic of Orderly's own events.
pub const DOMAIN: [&str; 6] = [ORDERS, INVENTORY, PAYMENTS, SAGAS, CATALOGUE, ACCOUNTS];

/// Topics that are the record of each key's latest state rather than a history: compacted, so
/// they keep every product's and customer's last event for as long as the topic lives, and a
/// projection rebuilt from the beginning finds them all.
pub const COMPACTED: [&str; 2] = [CATALOGUE, ACCOUNTS];
