//! One WatchCustomerOrders stream: each of a customer's PENDING orders as it is now, then every
//! order of theirs as it is placed or decided, until the client goes away (or the server shuts
//! down: UNAVAILABLE). Between changes it sleeps on the customer's [`Subscription`] (woken after
//! PlaceOrder commits one of their orders and after this process's consumer commits a decision)
//! and on the re-check timer, as WatchOrder streams do; on PostgreSQL a decision applied by
//! another replica is found by the re-check.
//!
//! Each wake-up reads the customer's orders changed since the last read, minus a margin: an
//! order's `updated_at` comes from the clock of whichever replica wrote it, so a change may be
//! stamped a little before one read already. What was sent is remembered (order and status)
//! for as long as the margin can bring it back, so nothing is sent twice.

use std::{
    collections::{HashMap, VecDeque},
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::{Stream, stream};
use orderly_common::{ApiError, Shutdown};
use orderly_proto::order::v1::{Order, WatchOrderResponse};
use tonic::Status;
use uuid::Uuid;

use super::Subscription;

/// How far before the last read each read looks again.
pub const CLOCK_MARGIN: Duration = Duration::from_secs(5);

/// Where a customer's streams wait in the hub (which is keyed by UUID, like orders).
pub fn customer_key(customer_id: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("orderly:customer/{customer_id}").as_bytes(),
    )
}

/// What a stream waits on, and how it reads the customer's orders changed since a time.
pub struct CustomerWatch<R> {
    pub subscription: Subscription,
    pub recheck: Duration,
    pub shutdown: Shutdown,
    pub read: R,
}

/// The stream that starts with `pending` (read after subscribing) and `recent` (every order of
/// the customer changed since `since`, read then too), and goes on with their changes.
pub fn updates<R, F>(
    pending: Vec<Order>,
    recent: Vec<Order>,
    since: DateTime<Utc>,
    watch: CustomerWatch<R>,
) -> impl Stream<Item = Result<WatchOrderResponse, Status>> + Send + 'static
where
    R: FnMut(DateTime<Utc>) -> F + Send + 'static,
    F: Future<Output = Result<Vec<Order>, ApiError>> + Send,
{
    let mut state = State {
        sent: HashMap::new(),
        queue: VecDeque::new(),
        since,
        done: false,
        watch,
    };
    // Orders changed lately but no longer pending were decided before the watch: known, not sent.
    for order in recent {
        state.sent.insert(order.order_id.clone(), seen(&order));
    }
    for order in pending {
        state.offer(order);
    }
    stream::unfold(state, |mut state| async move {
        let item = state.next().await?;
        Some((item, state))
    })
}

/// An order as the stream last sent it: its status, and when it changed.
type Seen = (i32, DateTime<Utc>);

fn seen(order: &Order) -> Seen {
    (order.status, changed_at(order))
}

fn changed_at(order: &Order) -> DateTime<Utc> {
    order
        .updated_at
        .as_ref()
        .and_then(|at| DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).ok()?))
        .unwrap_or_default()
}

struct State<R> {
    /// Each order sent (or known) lately, by id.
    sent: HashMap<String, Seen>,
    queue: VecDeque<Order>,
    /// The latest change read so far.
    since: DateTime<Utc>,
    done: bool,
    watch: CustomerWatch<R>,
}

impl<R, F> State<R>
where
    R: FnMut(DateTime<Utc>) -> F,
    F: Future<Output = Result<Vec<Order>, ApiError>>,
{
    async fn next(&mut self) -> Option<Result<WatchOrderResponse, Status>> {
        if self.done {
            return None;
        }
        loop {
            if let Some(order) = self.queue.pop_front() {
                return Some(Ok(WatchOrderResponse { order: Some(order) }));
            }
            tokio::select! {
                () = self.watch.subscription.changed() => {}
                () = tokio::time::sleep(self.watch.recheck) => {}
                () = self.watch.shutdown.requested() => {
                    self.done = true;
                    return Some(Err(Status::unavailable("server shutting down, watch again")));
                }
            }
            let margin = chrono::Duration::from_std(CLOCK_MARGIN).unwrap_or_default();
            match (self.watch.read)(self.since - margin).await {
                Ok(changed) => {
                    for order in changed {
                        self.since = self.since.max(changed_at(&order));
                        self.offer(order);
                    }
                    let forget_before = self.since - margin;
                    self.sent.retain(|_, (_, at)| *at >= forget_before);
                }
                Err(error) => {
                    self.done = true;
                    return Some(Err(error.into()));
                }
            }
        }
    }

    /// Queues `order` unless it was sent in this status already.
    fn offer(&mut self, order: Order) {
        let status = order.status;
        let before = self.sent.insert(order.order_id.clone(), seen(&order));
        if before.is_none_or(|(sent, _)| sent != status) {
            self.queue.push_back(order);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        pin::pin,
        sync::{Arc, Mutex},
    };

    use futures::StreamExt;
    use orderly_proto::order::v1::OrderStatus as ProtoStatus;

    use super::*;
    use crate::watch::Hub;

    const RECHECK: Duration = Duration::from_secs(2);

    fn order(id: &str, status: ProtoStatus, at_seconds: i64) -> Order {
        Order {
            order_id: id.to_owned(),
            status: status.into(),
            updated_at: Some(prost_types::Timestamp {
                seconds: at_seconds,
                nanos: 0,
            }),
            ..Order::default()
        }
    }

    /// What each read answers (the orders changed since the time asked), and the times asked.
    #[derive(Default)]
    struct Script {
        answers: Vec<Vec<Order>>,
        asked: Vec<DateTime<Utc>>,
    }

    #[derive(Clone, Default)]
    struct Reads(Arc<Mutex<Script>>);

    impl Reads {
        fn answering(mut answers: Vec<Vec<Order>>) -> Self {
            answers.reverse();
            let script = Script {
                answers,
                asked: Vec::new(),
            };
            Self(Arc::new(Mutex::new(script)))
        }

        fn reader(
            &self,
        ) -> impl FnMut(DateTime<Utc>) -> std::future::Ready<Result<Vec<Order>, ApiError>> + use<>
        {
            let reads = self.0.clone();
            move |since| {
                let mut script = reads.lock().unwrap();
                script.asked.push(since);
                std::future::ready(Ok(script.answers.pop().unwrap_or_default()))
            }
        }
    }

    fn sent(item: Option<Result<WatchOrderResponse, Status>>) -> (String, ProtoStatus) {
        let order = item.expect("an item").unwrap().order.unwrap();
        (order.order_id.clone(), order.status())
    }

    #[tokio::test(start_paused = true)]
    async fn pending_orders_first_then_each_change_once_and_decided_ones_from_before_never() {
        let hub = Hub::default();
        let key = customer_key("alice");
        let start = DateTime::from_timestamp(1_000, 0).unwrap();
        // "a" waits; "old" was decided just before the watch began.
        let pending = vec![order("a", ProtoStatus::Pending, 990)];
        let recent = vec![order("old", ProtoStatus::Confirmed, 998)];
        let reads = Reads::answering(vec![
            // "b" placed; "old" read again through the margin, unchanged.
            vec![
                order("old", ProtoStatus::Confirmed, 998),
                order("b", ProtoStatus::Pending, 1_001),
            ],
            // "a" decided; "b" read again, unchanged.
            vec![
                order("b", ProtoStatus::Pending, 1_001),
                order("a", ProtoStatus::Rejected, 1_002),
            ],
        ]);
        let watch = CustomerWatch {
            subscription: hub.subscribe(key),
            recheck: RECHECK,
            shutdown: Shutdown::new(),
            read: reads.reader(),
        };
        let mut stream = pin!(updates(pending, recent, start, watch));
        assert_eq!(
            sent(stream.next().await),
            ("a".into(), ProtoStatus::Pending)
        );
        hub.notify(key);
        assert_eq!(
            sent(stream.next().await),
            ("b".into(), ProtoStatus::Pending)
        );
        hub.notify(key);
        assert_eq!(
            sent(stream.next().await),
            ("a".into(), ProtoStatus::Rejected)
        );
        let asked = reads.0.lock().unwrap().asked.clone();
        let margin = chrono::Duration::from_std(CLOCK_MARGIN).unwrap();
        assert_eq!(
            asked,
            vec![
                start - margin,
                DateTime::from_timestamp(1_001, 0).unwrap() - margin
            ],
            "each read looks back the margin from the latest change read"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_stream_with_unavailable() {
        let hub = Hub::default();
        let shutdown = Shutdown::new();
        let watch = CustomerWatch {
            subscription: hub.subscribe(customer_key("alice")),
            recheck: RECHECK,
            shutdown: shutdown.clone(),
            read: Reads::default().reader(),
        };
        let mut stream = pin!(updates(vec![], vec![], Utc::now(), watch));
        shutdown.trigger();
        let ended = stream.next().await.unwrap().unwrap_err();
        assert_eq!(ended.code(), tonic::Code::Unavailable);
        assert!(stream.next().await.is_none());
    }
}
