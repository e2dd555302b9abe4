// Orderly's patch (see ORDERLY-PATCH.md): Kafka's long poll.
//
// tansu 0.6's `FetchService` sleeps out the whole `max_wait_ms` of a fetch even when records are
// already there, and re-reads storage on a timer when they are not. So a consumer's latency is
// its `fetch.wait.max.ms`, and a short wait to keep latency low makes every idle consumer fetch
// hundreds of times a second. Here a fetch is answered as soon as it has `min_bytes` of records
// (or an error to report), and otherwise waits, spending nothing, until a produce to one of its
// topics wakes it or `max_wait_ms` runs out, as a Kafka broker's fetch purgatory does.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::future::select_all;
use rama::{Context, Service};
use tansu_sans_io::{ErrorCode, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse};
use tansu_storage::{Error, FetchService, ProduceService, Storage};
use tokio::{sync::watch, time::Instant};

/// Fetches naming a topic only by id (Fetch v13 and later) wait on this key, woken by any produce.
const ANY_TOPIC: &str = "";

/// Produces announced to the fetches waiting on their topics.
#[derive(Clone, Debug, Default)]
pub struct Appended {
    topics: Arc<Mutex<HashMap<String, watch::Sender<()>>>>,
}

impl Appended {
    /// A receiver that sees every append to `topic` from now on.
    fn subscribe(&self, topic: &str) -> watch::Receiver<()> {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        topics
            .entry(topic.to_owned())
            .or_insert_with(|| watch::channel(()).0)
            .subscribe()
    }

    /// Wakes the fetches waiting on `topic`, and those that know their topics only by id.
    fn appended(&self, topic: &str) {
        let topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        for key in [topic, ANY_TOPIC] {
            if let Some(sender) = topics.get(key) {
                sender.send_replace(());
            }
        }
    }
}

/// `FetchService` answering as soon as there is something to answer.
#[derive(Clone, Debug)]
pub struct LongPollFetch {
    pub appended: Appended,
}

impl<G> Service<G, FetchRequest> for LongPollFetch
where
    G: Storage,
{
    type Response = FetchResponse;
    type Error = Error;

    async fn serve(&self, ctx: Context<G>, req: FetchRequest) -> Result<FetchResponse, Error> {
        let max_wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or_default());
        let deadline = Instant::now() + max_wait;
        let min_bytes = u64::try_from(req.min_bytes).unwrap_or_default();
        // Subscribed before the first read, so an append between that read and the wait wakes it.
        let mut woken: Vec<_> = req
            .topics
            .iter()
            .flatten()
            .map(|topic| self.appended.subscribe(topic.topic.as_deref().unwrap_or(ANY_TOPIC)))
            .collect();
        let immediate = req.max_wait_ms(0);
        loop {
            let response = FetchService.serve(ctx.clone(), immediate.clone()).await?;
            let (bytes, errors) = measure(&response);
            if bytes >= min_bytes || errors || woken.is_empty() || Instant::now() >= deadline {
                return Ok(response);
            }
            let any_append = select_all(woken.iter_mut().map(|rx| Box::pin(rx.changed())));
            tokio::select! {
                _ = any_append => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
            for rx in &mut woken {
                rx.mark_unchanged();
            }
        }
    }
}

/// Record bytes in a fetch response, and whether a partition reports an error.
fn measure(response: &FetchResponse) -> (u64, bool) {
    let partitions = response
        .responses
        .iter()
        .flatten()
        .flat_map(|topic| topic.partitions.iter().flatten());
    let mut bytes = 0;
    let mut errors = false;
    for partition in partitions {
        errors |= partition.error_code != i16::from(ErrorCode::None);
        bytes += partition.records.as_ref().map_or(0, |frame| {
            frame
                .batches
                .iter()
                .map(|batch| batch.record_data.len() as u64)
                .sum()
        });
    }
    (bytes, errors)
}

/// `ProduceService` announcing each append to the fetches waiting on its topic.
#[derive(Clone, Debug)]
pub struct AnnouncingProduce {
    pub appended: Appended,
}

impl<G> Service<G, ProduceRequest> for AnnouncingProduce
where
    G: Storage,
{
    type Response = ProduceResponse;
    type Error = Error;

    async fn serve(&self, ctx: Context<G>, req: ProduceRequest) -> Result<ProduceResponse, Error> {
        let topics: Vec<String> = req
            .topic_data
            .iter()
            .flatten()
            .map(|topic| topic.name.clone())
            .collect();
        let response = ProduceService.serve(ctx, req).await;
        for topic in &topics {
            self.appended.appended(topic);
        }
        response
    }
}
