//! The accounts' events: OpenAccount publishes AccountOpened (on `orderly.accounts.v1`, keyed by
//! the customer) in the transaction that opens the account, so the order service checks
//! customers against its own projection and takes their orders while payment is down.

use orderly_common::{
    kafka::{envelope, topics},
    messaging::{Relay, outbox},
};
use orderly_proto::events::v1::{AccountOpened, account_event};
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};

use crate::store::accounts;

/// Opens the account (or finds the one already open) and, when this call opened it, publishes
/// that, in one transaction.
pub async fn open(
    db: &DatabaseConnection,
    relay: &Relay,
    customer_id: &str,
    currency: &str,
) -> Result<accounts::Model, DbErr> {
    let txn = db.begin().await?;
    let (account, opened) = accounts::open(&txn, customer_id, currency).await?;
    if opened {
        let event = AccountOpened {
            customer_id: account.customer_id.clone(),
            currency: account.currency.clone(),
        };
        let envelope = envelope::wrap(
            envelope::subject_key(topics::ACCOUNTS, customer_id),
            envelope::Payload::Account(account_event::Event::AccountOpened(event)),
        );
        outbox::add(&txn, topics::ACCOUNTS, &envelope).await?;
    }
    txn.commit().await?;
    if opened {
        relay.wake();
    }
    Ok(account)
}
