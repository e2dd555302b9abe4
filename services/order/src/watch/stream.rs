//! One WatchOrder stream: the order as it is now, then every change, ending once it is
//! CONFIRMED or REJECTED. Between changes it sleeps on its [`Subscription`] (woken by this
//! process's consumer after it committed a decision) and on a slow re-check timer.
//!
//! The timer is there because the order service may run as several replicas in one consumer
//! group: the replica that applies an order's outcome is often not the one holding the stream,
//! and only the database is shared. So a stream also reads its order again every `recheck`
//! while it waits (one primary-key read per stream per interval, nothing when no stream is
//! open); on the replica that applied the outcome the notification ends the stream at once.
//!
//! The stream is polled by the connection that carries it (no task of its own): when the client
//! goes away the stream is dropped, and with it the subscription.

use std::time::Duration;

use futures::{Stream, stream};
use orderly_common::{ApiError, Shutdown};
use orderly_proto::order::v1::{Order, OrderStatus as ProtoStatus, WatchOrderResponse};
use tonic::Status;

use super::Subscription;

/// What a stream waits on, and how it reads its order again (`None`: the order is gone).
pub struct Watch<R> {
    pub subscription: Subscription,
    pub recheck: Duration,
    pub shutdown: Shutdown,
    pub read: R,
}

/// The stream of `first` (already read, after subscribing) and its changes.
pub fn updates<R, F>(
    first: Order,
    watch: Watch<R>,
) -> impl Stream<Item = Result<WatchOrderResponse, Status>> + Send + 'static
where
    R: FnMut() -> F + Send + 'static,
    F: Future<Output = Result<Option<Order>, ApiError>> + Send,
{
    let state = State {
        order_id: first.order_id.clone(),
        first: Some(first),
        last: None,
        done: false,
        watch,
    };
    stream::unfold(state, |mut state| async move {
        let item = state.next().await?;
        Some((item, state))
    })
}

struct State<R> {
    order_id: String,
    first: Option<Order>,
    /// What the client saw last: only a different order is sent.
    last: Option<Order>,
    done: bool,
    watch: Watch<R>,
}

impl<R, F> State<R>
where
    R: FnMut() -> F,
    F: Future<Output = Result<Option<Order>, ApiError>>,
{
    async fn next(&mut self) -> Option<Result<WatchOrderResponse, Status>> {
        if self.done {
            return None;
        }
        if let Some(first) = self.first.take() {
            return Some(Ok(self.send(first)));
        }
        loop {
            tokio::select! {
                () = self.watch.subscription.changed() => {}
                () = tokio::time::sleep(self.watch.recheck) => {}
                () = self.watch.shutdown.requested() => {
                    // Ended rather than held open through the drain: the client watches again,
                    // on another replica or after the restart, and gets the order as it is then.
                    return Some(Err(self.end(Status::unavailable(
                        "server shutting down, watch again",
                    ))));
                }
            }
            match (self.watch.read)().await {
                Ok(Some(order)) if self.last.as_ref() != Some(&order) => {
                    return Some(Ok(self.send(order)));
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    let gone = ApiError::not_found("order", self.order_id.clone());
                    return Some(Err(self.end(gone.into())));
                }
                Err(error) => return Some(Err(self.end(error.into()))),
            }
        }
    }

    fn send(&mut self, order: Order) -> WatchOrderResponse {
        self.done = decided(&order);
        self.last = Some(order.clone());
        WatchOrderResponse { order: Some(order) }
    }

    fn end(&mut self, status: Status) -> Status {
        self.done = true;
        status
    }
}

/// Whether the order reached its outcome: orders never change after that (invariant I6).
fn decided(order: &Order) -> bool {
    match order.status() {
        ProtoStatus::Confirmed | ProtoStatus::Rejected => true,
        ProtoStatus::Pending | ProtoStatus::Unspecified => false,
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::VecDeque,
        pin::pin,
        sync::{Arc, Mutex},
    };

    use futures::StreamExt;
    use tokio::time::Instant;
    use uuid::Uuid;

    use super::*;
    use crate::watch::Hub;

    const RECHECK: Duration = Duration::from_secs(2);

    fn order(id: Uuid, status: ProtoStatus) -> Order {
        Order {
            order_id: id.to_string(),
            status: status.into(),
            ..Order::default()
        }
    }

    type Answer = Result<Option<Order>, ApiError>;

    /// What the database answers, one read after another, and how many reads happened.
    #[derive(Clone, Default)]
    struct Script(Arc<Mutex<(VecDeque<Answer>, usize)>>);

    impl Script {
        fn answers(answers: impl IntoIterator<Item = Answer>) -> Self {
            Self(Arc::new(Mutex::new((answers.into_iter().collect(), 0))))
        }

        fn reads(&self) -> usize {
            self.0.lock().unwrap().1
        }

        fn reader(&self) -> impl FnMut() -> std::future::Ready<Answer> + use<> {
            let script = self.0.clone();
            move || {
                let mut script = script.lock().unwrap();
                script.1 += 1;
                let answer = script.0.pop_front().expect("no more reads were expected");
                std::future::ready(answer)
            }
        }
    }

    fn watch(
        hub: &Hub,
        first: Order,
        script: &Script,
        shutdown: &Shutdown,
    ) -> impl Stream<Item = Result<WatchOrderResponse, Status>> + use<> {
        let id = first.order_id.parse().unwrap();
        updates(
            first,
            Watch {
                subscription: hub.subscribe(id),
                recheck: RECHECK,
                shutdown: shutdown.clone(),
                read: script.reader(),
            },
        )
    }

    fn status(item: Option<Result<WatchOrderResponse, Status>>) -> ProtoStatus {
        item.expect("an item").unwrap().order.unwrap().status()
    }

    #[tokio::test(start_paused = true)]
    async fn a_decided_order_is_sent_once_and_the_stream_ends() {
        let (hub, id) = (Hub::default(), Uuid::now_v7());
        let script = Script::default();
        let first = order(id, ProtoStatus::Rejected);
        let mut stream = pin!(watch(&hub, first, &script, &Shutdown::new()));
        assert_eq!(status(stream.next().await), ProtoStatus::Rejected);
        assert!(stream.next().await.is_none());
        assert_eq!(script.reads(), 0);
        assert_eq!(hub.watched(), 0, "the ended stream no longer watches");
    }

    #[tokio::test(start_paused = true)]
    async fn a_notified_decision_is_sent_at_once_and_ends_the_stream() {
        let (hub, id) = (Hub::default(), Uuid::now_v7());
        let script = Script::answers([Ok(Some(order(id, ProtoStatus::Confirmed)))]);
        let first = order(id, ProtoStatus::Pending);
        let mut stream = pin!(watch(&hub, first, &script, &Shutdown::new()));
        let started = Instant::now();
        assert_eq!(status(stream.next().await), ProtoStatus::Pending);
        hub.notify(id);
        assert_eq!(status(stream.next().await), ProtoStatus::Confirmed);
        assert!(started.elapsed() < RECHECK, "woken, not found by the timer");
        assert!(stream.next().await.is_none());
        assert_eq!((script.reads(), hub.watched()), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_notification_the_recheck_finds_the_decision_and_sends_no_repeats() {
        // Another replica applied the outcome: nobody notifies this one.
        let (hub, id) = (Hub::default(), Uuid::now_v7());
        let script = Script::answers([
            Ok(Some(order(id, ProtoStatus::Pending))),
            Ok(Some(order(id, ProtoStatus::Pending))),
            Ok(Some(order(id, ProtoStatus::Rejected))),
        ]);
        let first = order(id, ProtoStatus::Pending);
        let mut stream = pin!(watch(&hub, first, &script, &Shutdown::new()));
        let started = Instant::now();
        assert_eq!(status(stream.next().await), ProtoStatus::Pending);
        assert_eq!(status(stream.next().await), ProtoStatus::Rejected);
        assert!(started.elapsed() >= RECHECK * 3, "{:?}", started.elapsed());
        assert!(stream.next().await.is_none());
        assert_eq!((script.reads(), hub.watched()), (3, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_stream_with_unavailable() {
        let (hub, id) = (Hub::default(), Uuid::now_v7());
        let shutdown = Shutdown::new();
        let first = order(id, ProtoStatus::Pending);
        let mut stream = pin!(watch(&hub, first, &Script::default(), &shutdown));
        assert_eq!(status(stream.next().await), ProtoStatus::Pending);
        shutdown.trigger();
        let ended = stream.next().await.unwrap().unwrap_err();
        assert_eq!(ended.code(), tonic::Code::Unavailable);
        assert!(stream.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_ends_the_stream_with_its_status() {
        let (hub, id) = (Hub::default(), Uuid::now_v7());
        let down = sea_orm::DbErr::Custom("disk on fire".into());
        let script = Script::answers([Err(ApiError::Internal(Box::new(down)))]);
        let first = order(id, ProtoStatus::Pending);
        let mut stream = pin!(watch(&hub, first, &script, &Shutdown::new()));
        assert_eq!(status(stream.next().await), ProtoStatus::Pending);
        hub.notify(id);
        let failed = stream.next().await.unwrap().unwrap_err();
        assert_eq!(failed.code(), tonic::Code::Internal);
        assert!(stream.next().await.is_none());
        assert_eq!(script.reads(), 1, "nothing read after the stream ended");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_goes_away_leaves_nothing_behind() {
        let (hub, id) = (Hub::default(), Uuid::now_v7());
        let first = order(id, ProtoStatus::Pending);
        let mut stream = Box::pin(watch(&hub, first, &Script::default(), &Shutdown::new()));
        assert_eq!(status(stream.next().await), ProtoStatus::Pending);
        assert_eq!(hub.watched(), 1);
        drop(stream);
        assert_eq!(hub.watched(), 0);
    }
}
