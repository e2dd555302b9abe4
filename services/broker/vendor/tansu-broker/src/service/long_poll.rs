// Orderly's patch (see ORDERLY-PATCH.md): Kafka's long poll.
//
// tansu 0.6's `FetchService` sleeps out the whole `max_wait_ms` of a fetch even when records are
// already there, and re-reads storage on a timer when they are not. So a consumer's latency is
// its `fetch.wait.max.ms`, and a short wait to keep latency low makes every idle consumer fetch
// hundreds of times a second. Here a fetch is answered as soon as it has `min_bytes` of records
// (or an error to report), and otherwise waits, spending nothing, until a produce to one of its
// topics wakes it or `max_wait_ms` runs out, as a Kafka broker's fetch purgatory does. Storage
// is asked only about partitions not known to be read up to their end (as produced through
// this broker, or as storage answered to an earlier fetch): each storage fetch is several SQL
// queries per partition, and asking for nothing was most of the broker's work.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::future::select_all;
use rama::{Context, Service};
use tansu_sans_io::{
    ErrorCode, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse,
    fetch_request::{FetchPartition, FetchTopic},
};
use tansu_storage::{Error, FetchService, ProduceService, Storage, TopicId};
use tokio::{sync::watch, time::Instant};
use uuid::Uuid;

/// Fetches naming a topic storage does not know wait on this key, woken by any produce.
const ANY_TOPIC: &str = "";

/// Produces announced to the fetches waiting on their topics.
#[derive(Clone, Debug, Default)]
pub struct Appended {
    topics: Arc<Mutex<HashMap<String, watch::Sender<()>>>>,
    /// The offset after the last record appended to each partition since the broker started.
    ends: Arc<Mutex<HashMap<(String, i32), i64>>>,
    /// Topic names by id: fetches from v13 on name topics by id, produces by name.
    names: Arc<Mutex<HashMap<[u8; 16], String>>>,
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

    /// Records that `topic`'s `partition` now ends at `end`.
    fn extended(&self, topic: &str, partition: i32, end: i64) {
        let mut ends = self.ends.lock().unwrap_or_else(PoisonError::into_inner);
        let known = ends.entry((topic.to_owned(), partition)).or_insert(end);
        *known = (*known).max(end);
    }

    /// `request` without the partitions known to be read up to their end, for which storage
    /// would answer with nothing, and its topics' names; `None` if that leaves none. Unknown (a
    /// partition neither appended to nor fetched since the broker started, or a topic without a
    /// known name) means storage must be asked. `names` are the request's topics' names, in
    /// order.
    fn unread(
        &self,
        request: &FetchRequest,
        names: &[Option<String>],
    ) -> Option<(FetchRequest, Vec<Option<String>>)> {
        let ends = self.ends.lock().unwrap_or_else(PoisonError::into_inner);
        let read_to_end = |name: &Option<String>, partition: &FetchPartition| {
            name.as_ref().is_some_and(|name| {
                ends.get(&(name.clone(), partition.partition))
                    .is_some_and(|end| partition.fetch_offset >= *end)
            })
        };
        let (topics, names): (Vec<FetchTopic>, Vec<Option<String>>) = request
            .topics
            .iter()
            .flatten()
            .zip(names)
            .filter_map(|(topic, name)| {
                let partitions: Vec<FetchPartition> = topic
                    .partitions
                    .iter()
                    .flatten()
                    .filter(|partition| !read_to_end(name, partition))
                    .cloned()
                    .collect();
                (!partitions.is_empty())
                    .then(|| (topic.clone().partitions(Some(partitions)), name.clone()))
            })
            .unzip();
        (!topics.is_empty()).then(|| (request.clone().topics(Some(topics)), names))
    }

    /// Learns where partitions end from what storage answered to a fetch.
    fn fetched(&self, response: &FetchResponse, names: &[Option<String>]) {
        for (topic, name) in response.responses.iter().flatten().zip(names) {
            let Some(name) = name else { continue };
            for partition in topic.partitions.iter().flatten() {
                if partition.error_code == i16::from(ErrorCode::None) {
                    self.extended(name, partition.partition_index, partition.high_watermark);
                }
            }
        }
    }

    /// The name of each topic `request` fetches, learning names by id from storage once.
    async fn names<G: Storage>(&self, ctx: &Context<G>, request: &FetchRequest) -> Vec<Option<String>> {
        let mut names = Vec::new();
        for topic in request.topics.iter().flatten() {
            let name = match (&topic.topic, topic.topic_id) {
                (Some(name), _) => Some(name.clone()),
                (None, Some(id)) => self.name_of(ctx, id).await,
                (None, None) => None,
            };
            names.push(name);
        }
        names
    }

    async fn name_of<G: Storage>(&self, ctx: &Context<G>, id: [u8; 16]) -> Option<String> {
        let known = self.names.lock().unwrap_or_else(PoisonError::into_inner).get(&id).cloned();
        if known.is_some() {
            return known;
        }
        let topic = TopicId::Id(Uuid::from_bytes(id));
        let metadata = ctx.state().metadata(Some(&[topic])).await.ok()?;
        let name = metadata.topics().first()?.name.clone()?;
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        _ = names.insert(id, name.clone());
        Some(name)
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
        let names = self.appended.names(&ctx, &req).await;
        // Subscribed before the first read, so an append between that read and the wait wakes it.
        let mut woken: Vec<_> = names
            .iter()
            .map(|name| self.appended.subscribe(name.as_deref().unwrap_or(ANY_TOPIC)))
            .collect();
        let immediate = req.max_wait_ms(0);
        loop {
            let last_chance = min_bytes == 0 || woken.is_empty() || Instant::now() >= deadline;
            if let Some((unread, unread_names)) = self.appended.unread(&immediate, &names) {
                let response = FetchService.serve(ctx.clone(), unread).await?;
                self.appended.fetched(&response, &unread_names);
                let (bytes, errors) = measure(&response);
                if bytes >= min_bytes || errors || last_chance {
                    return Ok(response);
                }
            } else if last_chance {
                // Every partition is read to its end: the answer is that nothing is new.
                return Ok(nothing_new());
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

/// The answer to a fetch whose partitions are all read to their end. Kafka's full fetch lists
/// every partition asked for; librdkafka takes a partition left out as one with nothing new.
fn nothing_new() -> FetchResponse {
    FetchResponse::default()
        .throttle_time_ms(Some(0))
        .error_code(Some(ErrorCode::None.into()))
        .session_id(Some(0))
        .node_endpoints(Some([].into()))
        .responses(Some([].into()))
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
        // Records per partition, to learn where each partition ends from the response.
        let sent: HashMap<(String, i32), i64> = req
            .topic_data
            .iter()
            .flatten()
            .flat_map(|topic| {
                topic.partition_data.iter().flatten().map(|partition| {
                    let records = partition.records.as_ref().map_or(0, |frame| {
                        frame
                            .batches
                            .iter()
                            .map(|batch| i64::from(batch.record_count))
                            .sum()
                    });
                    ((topic.name.clone(), partition.index), records)
                })
            })
            .collect();
        let response = ProduceService.serve(ctx, req).await;
        if let Ok(response) = &response {
            for topic in response.responses.iter().flatten() {
                for partition in topic.partition_responses.iter().flatten() {
                    let key = (topic.name.clone(), partition.index);
                    if partition.error_code == i16::from(ErrorCode::None)
                        && let Some(records) = sent.get(&key)
                    {
                        self.appended
                            .extended(&topic.name, partition.index, partition.base_offset + records);
                    }
                }
            }
        }
        let topics: BTreeSet<&str> = sent.keys().map(|(topic, _)| topic.as_str()).collect();
        for topic in topics {
            self.appended.appended(topic);
        }
        response
    }
}
