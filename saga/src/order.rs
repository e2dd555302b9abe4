//! The saga Orderly ships, declared in `saga/order-v1.toml` like any deployment's own.

use crate::{Definition, Versions, file::FileError};

pub const NAME: &str = "order";

/// The shipped definition as text (version 1: reserve inventory, authorize payment).
pub const V1: &str = include_str!("../order-v1.toml");

/// Version 1, validated.
pub fn v1() -> Result<Definition, FileError> {
    crate::file::parse("saga/order-v1.toml", V1)
}

/// Every version a process must be able to finish sagas under.
pub fn versions() -> Result<Versions, FileError> {
    Ok(Versions::new([v1()?]).expect("the shipped versions are distinct versions of one saga"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_saga_is_valid() {
        let versions = super::versions().unwrap();
        let latest = versions.latest();
        assert_eq!((latest.name(), latest.version()), (super::NAME, 1));
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
