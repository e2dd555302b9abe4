//! The saga Orderly ships: an order reserves its stock, then its payment. Both steps are undone
//! when the order is rejected (payment refunded, then stock released); confirming it (stock
//! sold, payment captured) is each participant's reaction to `SagaConfirmed`.

use crate::{Definition, DefinitionError, Versions};

pub const NAME: &str = "order";

/// Version 1: reserve inventory, authorize payment.
pub fn v1() -> Result<Definition, DefinitionError> {
    Definition::named(NAME, 1)
        .trigger_topic("orderly.orders.v1")
        .step("reserve_inventory")
        .by("inventory")
        .reports_to("orderly.inventory.v1")
        .starts_on("OrderPlaced")
        .succeeds_on("InventoryReserved")
        .fails_on("InventoryRejected")
        .compensated_by("/orderly.inventory.v1.InventoryService/ReleaseReservation")
        .step("authorize_payment")
        .by("payment")
        .reports_to("orderly.payments.v1")
        .starts_on("InventoryReserved")
        .succeeds_on("PaymentAuthorized")
        .fails_on("PaymentDeclined")
        .compensated_by("/orderly.payment.v1.PaymentService/RefundPayment")
        .build()
}

/// Every version a process must be able to finish sagas under.
pub fn versions() -> Result<Versions, DefinitionError> {
    Ok(Versions::new([v1()?]).expect("the shipped versions are distinct versions of one saga"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_saga_is_valid() {
        let versions = super::versions().unwrap();
        let latest = versions.latest();
        assert_eq!(latest.trigger(), "OrderPlaced");
        assert_eq!(latest.participants(), ["inventory", "payment"]);
        assert_eq!(
            latest.topics(),
            [
                "orderly.orders.v1",
                "orderly.inventory.v1",
                "orderly.payments.v1"
            ]
        );
    }
}
