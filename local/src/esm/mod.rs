//! Event-source-mapping emulation, as Lambda does it for Kafka: a consumer group per mapping;
//! batches of up to `BatchSize` records gathered for up to `MaximumBatchingWindowInSeconds`
//! (and at most 6 MB); MSK-shaped events; offsets committed only after the batch is settled;
//! `ReportBatchItemFailures` (retry from the lowest failed offset of each partition);
//! `BisectBatchOnFunctionError`; `MaximumRetryAttempts` with exponential backoff; and the
//! on-failure destination as a dead-letter topic carrying each record and the reason.

mod settle;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use relaychat_adapters::kafka::{KafkaDeadLetters, KafkaPublisher, KafkaSettings, headers_of};
use relaychat_core::ports::DeadLetters;
use relaychat_schema::MskEvent;
use relaychat_schema::kafka::{EventSource, RawRecord, msk_event};
use relaychat_schema::{DecodedRecord, RecordId};
use serde::Serialize;
use tokio::sync::watch;
use tracing::{Instrument, error, info, warn};

use crate::functions::SharedKafkaFunction;
use crate::template::{Mapping, StartingPosition};
use settle::{FIRST_BACKOFF, Identified, MAX_BACKOFF, Target, settle};
pub use settle::{Outcome, Policy, Unsettled, backoff};

/// Read to the end of every partition and nothing new for this long, a mapping dozes: it stops
/// fetching (each fetch with nothing to return still costs the broker a round) until something
/// is produced in this process, or `DOZE` passes (records from other producers); then it fetches
/// until it has read to the end again. Fetching only starts from a known position: a mapping
/// never dozes before every partition reported its end, so `LATEST` is where it started.
const IDLE_AFTER: Duration = Duration::from_secs(2);
const DOZE: Duration = Duration::from_secs(1);
/// How often the loop looks whether it may doze while nothing arrives.
const TICK: Duration = Duration::from_millis(100);

/// Lambda's limit on an invocation's payload.
pub const MAX_EVENT_BYTES: usize = 6 * 1024 * 1024;
/// How long the on-failure destination is retried before the records are left uncommitted and
/// read again later: it must neither drop them nor hold the mapping without end.
const DESTINATION_PATIENCE: Duration = Duration::from_secs(20);

/// A record as read from the broker, with its timestamp as the broker gave it: one that no
/// Lambda event can carry makes the invocation fail (never an empty or altered event).
#[derive(Debug, Clone)]
pub struct Polled {
    pub record: DecodedRecord,
    pub timestamp_ms: i64,
}

impl Identified for Polled {
    fn id(&self) -> &RecordId {
        &self.record.id
    }
}

/// The event for these records, or why there can be none.
fn event_of(records: &[Polled], source: &EventSource) -> Result<MskEvent, String> {
    if let Some(p) = records
        .iter()
        .find(|p| chrono::DateTime::from_timestamp_millis(p.timestamp_ms).is_none())
    {
        return Err(format!(
            "record {} has a timestamp no event can carry: {}",
            p.record.id, p.timestamp_ms
        ));
    }
    msk_event(records.iter().map(|p| &p.record), source).map_err(|e| e.to_string())
}

/// How long a stopping mapping waits for its consumer to leave the group.
const CLOSE_PATIENCE: Duration = Duration::from_secs(5);

/// Closes the consumer (leave the group, destroy) on a thread of its own, waiting at most
/// [`CLOSE_PATIENCE`]. librdkafka's close blocks, and was seen to block for good when a consumer
/// still joining its group was dropped (`rd_kafka_assign` from the close's rebalance, in a test
/// that stopped the runtime right after starting it): on a runtime worker that stalled the whole
/// shutdown. A consumer that does not close in time is left behind; the process ends without it.
async fn close(consumer: StreamConsumer, function: &str) {
    let (closed, on_closed) = tokio::sync::oneshot::channel();
    let closing = std::thread::Builder::new().name("esm-close".into()).spawn(move || {
        drop(consumer);
        let _ = closed.send(());
    });
    if let Err(e) = closing {
        warn!(function, error = %e, "no thread to close the consumer on; it was closed here");
        return;
    }
    if tokio::time::timeout(CLOSE_PATIENCE, on_closed).await.is_err() {
        warn!(
            function,
            "the consumer did not leave its group within {CLOSE_PATIENCE:?}; left behind"
        );
    }
}

/// What a record adds to an event: base64 grows by a third; headers go out as JSON numbers
/// (~4 bytes each).
fn event_bytes(p: &Polled) -> usize {
    let r = &p.record;
    (r.value.len() + r.key.as_ref().map_or(0, Vec::len)) * 4 / 3
        + r.headers.iter().map(|(k, v)| k.len() + v.len() * 4).sum::<usize>()
        + 200
}

/// Per-mapping counters, for the log and `/dev/status`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MappingStats {
    pub function: String,
    pub consumer_group: String,
    pub topics: Vec<String>,
    pub invocations: u64,
    pub records: u64,
    pub retries: u64,
    pub dead_lettered: u64,
    pub function_errors: u64,
    /// `topic-partition` → next offset to read (committed).
    pub committed: BTreeMap<String, i64>,
    /// `topic-partition` → end of the partition as last seen (records in it so far).
    pub end_offsets: BTreeMap<String, i64>,
    /// `topic-partition` → records not yet processed.
    pub lag: BTreeMap<String, i64>,
    /// The latest invocations, newest last (at most `RECENT_INVOCATIONS`).
    pub recent: std::collections::VecDeque<Invocation>,
}

/// Invocations each mapping remembers for the dashboard.
pub const RECENT_INVOCATIONS: usize = 20;

/// One invocation, as the dashboard lists it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Invocation {
    pub at: chrono::DateTime<chrono::Utc>,
    /// `topic-partition@first..last`, as the log names it.
    pub batch: String,
    pub records: usize,
    pub duration_ms: u128,
    /// `success`, `partial failure`, `function error` or `timeout`.
    pub outcome: &'static str,
}

pub type Stats = Arc<Mutex<Vec<MappingStats>>>;

pub struct Esm {
    pub mapping: Mapping,
    pub function: SharedKafkaFunction,
    pub settings: KafkaSettings,
    pub dead_letters: KafkaPublisher,
    pub source: EventSource,
    pub stats: Stats,
    pub index: usize,
    /// Changes when this process produced a record: a dozing mapping wakes (see `IDLE_AFTER`).
    pub produced: watch::Receiver<u64>,
}

impl Esm {
    fn stats(&self, update: impl FnOnce(&mut MappingStats)) {
        if let Ok(mut all) = self.stats.lock()
            && let Some(s) = all.get_mut(self.index)
        {
            update(s);
        }
    }

    /// Polls, invokes and commits until `shutdown` flips to true; then commits and returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), KafkaError> {
        let m = &self.mapping;
        let consumer: StreamConsumer = self
            .settings
            .client_config()
            .set("group.id", &m.consumer_group)
            .set("enable.auto.commit", "false")
            .set(
                "auto.offset.reset",
                if m.starting_position == StartingPosition::Latest {
                    "latest"
                } else {
                    "earliest"
                },
            )
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .set("fetch.wait.max.ms", "10")
            .set("enable.partition.eof", "true")
            .create()?;
        let topics: Vec<&str> = m.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        info!(function = %m.function, group = %m.consumer_group, topics = ?m.topics, "event source mapping started");
        let mut produced = self.produced.clone();
        // Partitions read to their end since their last record.
        let mut at_end: HashSet<i32> = HashSet::new();
        let mut quiet_since = Instant::now();
        loop {
            // Anything produced from here on wakes a doze.
            produced.borrow_and_update();
            if quiet_since.elapsed() >= IDLE_AFTER && caught_up(&consumer, &at_end) {
                match self.doze(&consumer, &mut produced, &mut shutdown).await {
                    Woke::Stopping => break,
                    // Something is on its way: fetch for a whole quiet spell before dozing again
                    // (an end reported from before the pause must not send it back to sleep).
                    Woke::Produced => quiet_since = Instant::now(),
                    // Other producers' records: fresh ends are needed before the next doze.
                    Woke::Timer => {}
                }
                at_end.clear();
                continue;
            }
            let first = tokio::select! {
                _ = shutdown.changed() => break,
                message = tokio::time::timeout(TICK, consumer.recv()) => message,
            };
            let Ok(first) = first else { continue };
            let mut batch = Vec::new();
            match first {
                Ok(message) => {
                    at_end.remove(&message.partition());
                    quiet_since = Instant::now();
                    batch.push(record(&message));
                }
                Err(KafkaError::PartitionEOF(partition)) => {
                    self.note_end(&consumer, partition);
                    at_end.insert(partition);
                    continue;
                }
                Err(e) => {
                    warn!(function = %m.function, error = %e, "poll failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
            self.fill(&consumer, &mut batch, &mut at_end).await;
            let policy = Policy {
                max_retries: m.max_retries,
                bisect_on_error: m.bisect_on_error,
            };
            let settling = Settling {
                esm: &self,
                shutdown: shutdown.clone(),
            };
            let unsettled = settle(policy, &settling, batch.clone()).await;
            // Records from the first unsettled one of a partition on are read again, not committed.
            batch.retain(|r| {
                unsettled
                    .get(&r.id().topic_partition())
                    .is_none_or(|first| r.id().offset < first.offset)
            });
            self.commit(&consumer, &batch);
            if !unsettled.is_empty() {
                self.rewind(&consumer, &unsettled);
                if !settling.sleep(MAX_BACKOFF).await {
                    break;
                }
            }
        }
        // Stopping: what was settled is committed for sure before the consumer goes (every record
        // received was settled; the position is right after the last).
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            warn!(function = %m.function, error = %e, "final offset commit failed; records will be redelivered");
        }
        close(consumer, &m.function).await;
        info!(function = %m.function, "event source mapping stopped");
        Ok(())
    }

    /// Adds records until the batch is full, 6 MB, or the batching window closes (window 0: while
    /// records are already there).
    async fn fill(&self, consumer: &StreamConsumer, batch: &mut Vec<Polled>, at_end: &mut HashSet<i32>) {
        let m = &self.mapping;
        let deadline = Instant::now() + Duration::from_millis(m.batching_window_ms.max(5));
        let mut bytes: usize = batch.iter().map(event_bytes).sum();
        while batch.len() < m.batch_size {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, consumer.recv()).await {
                Ok(Ok(message)) => {
                    let r = record(&message);
                    if bytes + event_bytes(&r) > MAX_EVENT_BYTES {
                        // Too big for this invocation: read it again next time.
                        let _ = consumer.seek(
                            &r.record.id.topic,
                            r.record.id.partition,
                            Offset::Offset(r.record.id.offset),
                            Duration::from_secs(1),
                        );
                        break;
                    }
                    bytes += event_bytes(&r);
                    at_end.remove(&r.record.id.partition);
                    batch.push(r);
                }
                Ok(Err(KafkaError::PartitionEOF(partition))) => {
                    self.note_end(consumer, partition);
                    at_end.insert(partition);
                    if m.batching_window_ms == 0 {
                        break;
                    }
                }
                Ok(Err(_)) | Err(_) => break,
            }
        }
    }

    /// Stops fetching until this process produces something, a `DOZE` passes, or the mapping
    /// stops (`false`).
    async fn doze(
        &self,
        consumer: &StreamConsumer,
        produced: &mut watch::Receiver<u64>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Woke {
        if produced.has_changed().unwrap_or(true) {
            return Woke::Produced;
        }
        let Ok(assignment) = consumer.assignment() else {
            return Woke::Timer;
        };
        if consumer.pause(&assignment).is_err() {
            return Woke::Timer;
        }
        let woke = tokio::select! {
            _ = produced.changed() => Woke::Produced,
            _ = tokio::time::sleep(DOZE) => Woke::Timer,
            _ = shutdown.changed() => Woke::Stopping,
        };
        if let Err(e) = consumer.resume(&assignment) {
            warn!(function = %self.mapping.function, error = %e, "could not resume fetching");
        }
        woke
    }

    /// Moves the consumer back to the first unsettled record of each partition.
    fn rewind(&self, consumer: &StreamConsumer, unsettled: &Unsettled) {
        for first in unsettled.values() {
            if let Err(e) = consumer.seek(
                &first.topic,
                first.partition,
                Offset::Offset(first.offset),
                Duration::from_secs(1),
            ) {
                error!(function = %self.mapping.function, record = %first, error = %e, "could not rewind; the records come back after a restart");
            }
        }
    }

    /// One invocation, as Lambda makes it: the MSK event, the function's timeout, and a panic or
    /// an event that cannot be built counted as a function error.
    async fn invoke(&self, records: &[Polled]) -> Outcome {
        let m = &self.mapping;
        let span = describe(records);
        // An event that cannot be built fails the invocation: an empty event would "succeed"
        // and the batch would be committed unprocessed.
        let event = match event_of(records, &self.source) {
            Ok(event) => event,
            Err(e) => {
                error!(function = %m.function, batch = %span, error = %e, outcome = "function error", "could not build the event");
                return Outcome::FunctionError(format!("could not build the event: {e}"));
            }
        };
        let started = Instant::now();
        let function = self.function.clone();
        // A panicking handler is a failed invocation, as a crashed Lambda would be.
        // The function's name, for the records' spans within (logs, and traces over OTLP).
        let invocation = tracing::info_span!("invocation", function = %m.function);
        let call = async move { function.invoke_batch(&event).await }.instrument(invocation);
        let result = tokio::time::timeout(
            Duration::from_secs(m.timeout_secs),
            std::panic::AssertUnwindSafe(call).catch_unwind(),
        )
        .await;
        let duration_ms = started.elapsed().as_millis();
        let (outcome, label) = match result {
            Ok(Ok(response)) if response.batch_item_failures.is_empty() || !m.report_batch_item_failures => {
                info!(function = %m.function, records = records.len(), batch = %span, duration_ms, outcome = "success", "invoked");
                (Outcome::Success, "success")
            }
            Ok(Ok(response)) => {
                let mut lowest: HashMap<String, i64> = HashMap::new();
                for f in &response.batch_item_failures {
                    let id = &f.item_identifier;
                    let low = lowest.entry(id.partition.clone()).or_insert(id.offset);
                    *low = (*low).min(id.offset);
                }
                info!(function = %m.function, records = records.len(), batch = %span, duration_ms, outcome = "partial failure", failed_from = ?lowest, "invoked");
                (Outcome::PartialFailure(lowest), "partial failure")
            }
            Ok(Err(_panic)) => {
                error!(function = %m.function, batch = %span, duration_ms, outcome = "function error", "the handler panicked");
                (
                    Outcome::FunctionError("the function failed (panic)".into()),
                    "function error",
                )
            }
            Err(_) => {
                error!(function = %m.function, batch = %span, duration_ms, outcome = "timeout", "invocation timed out");
                let error = format!("the function timed out after {} s", m.timeout_secs);
                (Outcome::FunctionError(error), "timeout")
            }
        };
        let invocation = Invocation {
            at: chrono::Utc::now(),
            batch: span.to_string(),
            records: records.len(),
            duration_ms,
            outcome: label,
        };
        self.stats(|s| {
            s.invocations += 1;
            s.records += records.len() as u64;
            if s.recent.len() == RECENT_INVOCATIONS {
                s.recent.pop_front();
            }
            s.recent.push_back(invocation);
        });
        outcome
    }

    fn commit(&self, consumer: &StreamConsumer, batch: &[Polled]) {
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for r in batch {
            let id = r.id();
            let n = next.entry((id.topic.clone(), id.partition)).or_insert(0);
            *n = (*n).max(id.offset + 1);
        }
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in &next {
            let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
        }
        // Async: a synchronous commit blocks its thread until the broker answers, and with a
        // hung broker that stalls every task on the runtime (the gateway's connects included).
        // The order still holds: a batch is committed only after it settled; a lost commit means
        // a redelivery, which the handlers' idempotency absorbs.
        if let Err(e) = consumer.commit(&list, CommitMode::Async) {
            // Not fatal: the records are redelivered after a restart, and handlers are idempotent.
            warn!(function = %self.mapping.function, error = %e, "offset commit failed");
        }
        self.stats(|s| {
            for ((topic, partition), offset) in next {
                let tp = format!("{topic}-{partition}");
                let end = s.end_offsets.get(&tp).copied().unwrap_or(offset).max(offset);
                s.end_offsets.insert(tp.clone(), end);
                s.lag.insert(tp.clone(), end - offset);
                s.committed.insert(tp, offset);
            }
        });
    }

    /// End of a partition reached: everything before the consumer's position is read.
    fn note_end(&self, consumer: &StreamConsumer, partition: i32) {
        let Ok(position) = consumer.position() else { return };
        for e in position.elements() {
            if e.partition() != partition {
                continue;
            }
            if let Offset::Offset(o) = e.offset() {
                let tp = format!("{}-{}", e.topic(), partition);
                self.stats(|s| {
                    s.end_offsets.insert(tp.clone(), o);
                    let committed = s.committed.get(&tp).copied().unwrap_or(o);
                    s.lag.insert(tp, (o - committed).max(0));
                });
            }
        }
    }
}

/// The mapping as settling sees it: invoking, the on-failure destination, and waits that end
/// early when the mapping is stopping.
struct Settling<'a> {
    esm: &'a Esm,
    shutdown: watch::Receiver<bool>,
}

impl Settling<'_> {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Sleeps `wait`, or less if the mapping starts stopping; `false` if it is stopping.
    async fn sleep(&self, wait: Duration) -> bool {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(wait) => !self.stopping(),
            _ = shutdown.wait_for(|stop| *stop) => false,
        }
    }
}

impl Target<Polled> for Settling<'_> {
    async fn invoke(&self, records: &[Polled]) -> Outcome {
        let outcome = self.esm.invoke(records).await;
        if matches!(outcome, Outcome::FunctionError(_)) {
            self.esm.stats(|s| s.function_errors += 1);
        }
        outcome
    }

    /// Each record with the reason on the destination topic, retried for `DESTINATION_PATIENCE`
    /// (or until the mapping stops): nothing is dropped, and the mapping is never held for good.
    async fn give_up(&self, records: &[Polled], reason: &str) -> bool {
        let m = &self.esm.mapping;
        let topic = m
            .on_failure_topic
            .clone()
            .unwrap_or_else(|| format!("{}-dlq", m.function));
        let destination = KafkaDeadLetters::to_topic(self.esm.dead_letters.clone(), &m.consumer_group, &topic);
        let deadline = Instant::now() + DESTINATION_PATIENCE;
        for Polled { record: r, .. } in records {
            let raw = RawRecord::from(r);
            let mut wait = FIRST_BACKOFF;
            while let Err(e) = destination.dead_letter(&raw, reason).await {
                if Instant::now() >= deadline || !self.sleep(wait).await {
                    error!(function = %m.function, record = %r.id, error = %e.chain(), "on-failure destination down; the record will be read again");
                    return false;
                }
                error!(function = %m.function, record = %r.id, error = %e.chain(), "on-failure destination unavailable; retrying");
                wait = (wait * 2).min(MAX_BACKOFF);
            }
            warn!(function = %m.function, record = %r.id, %topic, %reason, "sent to the on-failure destination");
            self.esm.stats(|s| s.dead_lettered += 1);
        }
        true
    }

    async fn back_off(&self, wait: Duration) -> bool {
        self.esm.stats(|s| s.retries += 1);
        self.sleep(wait).await
    }
}

/// Why a doze ended.
enum Woke {
    /// This process produced a record.
    Produced,
    /// `DOZE` passed.
    Timer,
    /// The mapping is stopping.
    Stopping,
}

/// Every assigned partition read to its end (a mapping with nothing assigned yet is not).
fn caught_up(consumer: &StreamConsumer, at_end: &HashSet<i32>) -> bool {
    consumer.assignment().is_ok_and(|assigned| {
        let partitions = assigned.elements();
        !partitions.is_empty() && partitions.iter().all(|p| at_end.contains(&p.partition()))
    })
}

fn record(m: &rdkafka::message::BorrowedMessage<'_>) -> Polled {
    let headers = headers_of(m);
    let timestamp_ms = m.timestamp().to_millis().unwrap_or_default();
    let record = DecodedRecord {
        id: RecordId {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
        },
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().unwrap_or_default().to_vec(),
        headers,
        timestamp: chrono::DateTime::from_timestamp_millis(timestamp_ms).unwrap_or_default(),
    };
    Polled { record, timestamp_ms }
}

/// `chat-messages-0@3..5, chat-messages-2@9` for the invocation log.
fn describe(records: &[Polled]) -> String {
    let mut ranges: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in records {
        let id = r.id();
        let e = ranges.entry(id.topic_partition()).or_insert((id.offset, id.offset));
        e.0 = e.0.min(id.offset);
        e.1 = e.1.max(id.offset);
    }
    ranges
        .iter()
        .map(|(tp, (lo, hi))| {
            if lo == hi {
                format!("{tp}@{lo}")
            } else {
                format!("{tp}@{lo}..{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
