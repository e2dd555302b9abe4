//! WatchOrder's hub: which orders (and customers, for WatchCustomerOrders) this process's
//! streams are waiting on, and how the consumer tells them, after its commit, that an order was
//! decided.
//!
//! One `watch` channel per watched order rather than one broadcast of every decision: a decision
//! wakes only the streams of its own order (a broadcast would wake every stream for every
//! decision), and a watch channel cannot lag: notifications that arrive while a stream is busy
//! reading collapse into one "changed", after which the stream reads the order again anyway. An
//! order's entry lives exactly as long as a stream holds a [`Subscription`] on it, so the map
//! holds no more than the open streams, whether they end or their client goes away.

pub mod customer;
pub mod stream;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use orderly_common::{Shutdown, messaging::notifications};
use sea_orm::DatabaseConnection;
use tokio::sync::watch;
use uuid::Uuid;

/// What every WatchOrder stream of this process shares.
#[derive(Clone, Debug)]
pub struct Watchers {
    pub hub: Hub,
    /// How often a waiting stream reads its order again (`--watch-recheck-ms`): see [`stream`].
    pub recheck: Duration,
    /// Streams end when shutdown starts, so they do not hold the drain open.
    pub shutdown: Shutdown,
}

/// The orders this process's WatchOrder streams wait on. Cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct Hub {
    waiters: Arc<Mutex<HashMap<Uuid, watch::Sender<()>>>>,
}

impl Hub {
    /// Starts listening for changes of `order_id`. Subscribe before reading the order, so that a
    /// change committed between the read and the wait still wakes the stream.
    pub fn subscribe(&self, order_id: Uuid) -> Subscription {
        let receiver = self
            .lock()
            .entry(order_id)
            .or_insert_with(|| watch::Sender::new(()))
            .subscribe();
        Subscription {
            hub: self.clone(),
            order_id,
            receiver: Some(receiver),
        }
    }

    /// Wakes the streams watching `order_id`. Call only once the change is committed: a stream
    /// must never read a state that could still roll back.
    pub fn notify(&self, order_id: Uuid) {
        if let Some(sender) = self.lock().get(&order_id) {
            sender.send_replace(());
        }
    }

    /// How many orders have streams waiting on them.
    #[cfg(test)]
    pub fn watched(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, watch::Sender<()>>> {
        // Nothing panics while holding the lock, and the map stays consistent if something did.
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// On PostgreSQL, wakes this replica's streams on every order another replica decided (the
/// `orders` table notifies `orderly_order_decided` with the order's id); returns at once on
/// SQLite, where the only replica's consumer wakes them. Runs until `shutdown`.
pub async fn decided_elsewhere(db: DatabaseConnection, hub: Hub, shutdown: Shutdown) {
    let heard = |payload: &str| match Uuid::parse_str(payload) {
        Ok(order_id) => hub.notify(order_id),
        Err(_) => tracing::warn!(
            payload,
            "an order decision notification without an order id"
        ),
    };
    notifications::listen(db, DECIDED_CHANNEL, "order decision", heard, shutdown).await;
}

/// Where the `orders` table announces decisions (migration `m0003_decisions_notify`).
const DECIDED_CHANNEL: &str = "orderly_order_decided";

/// One stream's interest in one order; dropping it (the stream ended or its client went away)
/// removes the order's entry once no other stream watches it.
#[derive(Debug)]
pub struct Subscription {
    hub: Hub,
    order_id: Uuid,
    // Always Some until drop, which must release it under the hub's lock.
    receiver: Option<watch::Receiver<()>>,
}

impl Subscription {
    /// Resolves once the order was notified since the last call (or since subscribing).
    pub async fn changed(&mut self) {
        let Some(receiver) = self.receiver.as_mut() else {
            return std::future::pending().await;
        };
        if receiver.changed().await.is_err() {
            // Unreachable while this receiver lives (the hub keeps the sender until the last
            // receiver is gone), but never spin on it.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Under the lock, so that a concurrent subscribe either shares the entry before it is
        // removed, or creates a fresh one after.
        let mut waiters = self.hub.lock();
        drop(self.receiver.take());
        if waiters
            .get(&self.order_id)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            waiters.remove(&self.order_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Whether `changed` resolves right away (it never needs real time in these tests).
    async fn woken(subscription: &mut Subscription) -> bool {
        tokio::time::timeout(Duration::from_millis(10), subscription.changed())
            .await
            .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_notification_wakes_only_the_streams_of_its_order() {
        let hub = Hub::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut first = hub.subscribe(a);
        let mut second = hub.subscribe(a);
        let mut other = hub.subscribe(b);
        assert!(!woken(&mut first).await, "nothing notified yet");
        hub.notify(a);
        assert!(woken(&mut first).await);
        assert!(woken(&mut second).await);
        assert!(!woken(&mut other).await, "another order's decision");
        // Seen once; it does not fire again until the next notification.
        assert!(!woken(&mut first).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_notification_while_the_stream_is_busy_is_kept_and_several_collapse_into_one() {
        let hub = Hub::default();
        let order = Uuid::now_v7();
        // Subscribed, then busy (reading the database): the decision lands meanwhile.
        let mut subscription = hub.subscribe(order);
        hub.notify(order);
        hub.notify(order);
        hub.notify(order);
        assert!(woken(&mut subscription).await, "the decision is not lost");
        assert!(
            !woken(&mut subscription).await,
            "three notifications, one wake-up"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_kept_for_orders_nobody_watches() {
        let hub = Hub::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        hub.notify(a);
        assert_eq!(
            hub.watched(),
            0,
            "notifying an unwatched order creates nothing"
        );
        let first = hub.subscribe(a);
        let second = hub.subscribe(a);
        let other = hub.subscribe(b);
        assert_eq!(hub.watched(), 2);
        drop(first);
        assert_eq!(hub.watched(), 2, "a stream still watches a");
        drop(second);
        assert_eq!(hub.watched(), 1, "the last watcher of a left");
        drop(other);
        assert_eq!(hub.watched(), 0);
        // Watching again after the entry went away starts afresh and still works.
        let mut again = hub.subscribe(a);
        hub.notify(a);
        assert!(woken(&mut again).await);
    }
}
