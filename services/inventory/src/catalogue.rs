//! The catalogue's events: every UpsertProduct publishes the product's price (ProductPriced on
//! `orderly.catalogue.v1`, keyed by the product) in the transaction that changes it, so the order
//! service prices orders from its own projection and takes them while inventory is down.

use orderly_common::{
    kafka::{envelope, topics},
    messaging::{Relay, outbox},
};
use orderly_proto::{
    common::v1::Money,
    events::v1::{ProductPriced, catalogue_event},
};
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};

use crate::store::products;

/// Creates or updates the product and publishes its price, in one transaction.
pub async fn upsert(
    db: &DatabaseConnection,
    relay: &Relay,
    sku: &str,
    name: &str,
    unit_price_minor: i64,
    currency: &str,
) -> Result<products::Model, DbErr> {
    let txn = db.begin().await?;
    let product = products::upsert(&txn, sku, name, unit_price_minor, currency).await?;
    outbox::add(&txn, topics::CATALOGUE, &priced(&product)).await?;
    txn.commit().await?;
    relay.wake();
    Ok(product)
}

fn priced(product: &products::Model) -> orderly_proto::events::v1::EventEnvelope {
    let event = ProductPriced {
        sku: product.sku.clone(),
        name: product.name.clone(),
        unit_price: Some(Money {
            amount_minor: product.unit_price_minor,
            currency: product.currency.clone(),
        }),
        version: u64::try_from(product.version).unwrap_or_default(),
    };
    envelope::wrap(
        envelope::subject_key(topics::CATALOGUE, &product.sku),
        envelope::Payload::Catalogue(catalogue_event::Event::ProductPriced(event)),
    )
}
