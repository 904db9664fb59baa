//! Event-source-mapping emulation, as Lambda does it for Kafka: a consumer group per mapping;
//! batches of up to `BatchSize` records gathered for up to `MaximumBatchingWindowInSeconds`
//! (and at most 6 MB); MSK-shaped events; offsets committed only after the batch is settled;
//! `ReportBatchItemFailures` (retry from the lowest failed offset of each partition);
//! `BisectBatchOnFunctionError`; `MaximumRetryAttempts` with exponential backoff; and the
//! on-failure destination as a dead-letter topic carrying each record and the reason.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::kafka::KafkaEvent;
use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use relaychat_adapters::kafka::{KafkaDeadLetters, KafkaPublisher, KafkaSettings, headers_of};
use relaychat_core::ports::DeadLetters;
use relaychat_schema::RecordId;
use relaychat_schema::kafka::{RawRecord, encode_record};
use serde::Serialize;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::functions::SharedKafkaFunction;
use crate::template::{Mapping, StartingPosition};

/// Lambda's limit on an invocation's payload.
pub const MAX_EVENT_BYTES: usize = 6 * 1024 * 1024;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long the on-failure destination is retried before the records are left uncommitted and
/// read again later: it must neither drop them nor hold the mapping without end.
const DESTINATION_PATIENCE: Duration = Duration::from_secs(20);

/// A record as read from the broker.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: RecordId,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp_ms: i64,
}

impl Record {
    fn size(&self) -> usize {
        // base64 grows by a third; headers go out as JSON numbers (~4 bytes each).
        (self.value.len() + self.key.as_ref().map_or(0, Vec::len)) * 4 / 3
            + self.headers.iter().map(|(k, v)| k.len() + v.len() * 4).sum::<usize>()
            + 200
    }
}

/// The MSK-shaped event Lambda would deliver for these records.
pub fn msk_event(records: &[Record], cluster_arn: &str, brokers: &str) -> Result<KafkaEvent, serde_json::Error> {
    let mut groups: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for r in records {
        groups.entry(r.id.topic_partition()).or_default().push(encode_record(
            &r.id,
            r.key.as_deref(),
            &r.value,
            &r.headers,
            r.timestamp_ms,
        ));
    }
    let event = serde_json::json!({
        "eventSource": "aws:kafka",
        "eventSourceArn": cluster_arn,
        "bootstrapServers": brokers,
        "records": groups,
    });
    serde_json::from_value(event)
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
}

pub type Stats = Arc<Mutex<Vec<MappingStats>>>;

/// Per `topic-partition`, the first record a batch could not settle.
type Unsettled = HashMap<String, RecordId>;

/// How one invocation ended.
enum Outcome {
    /// Every record done.
    Success,
    /// The function answered with these failed items (`topic-partition` → lowest failed offset).
    PartialFailure(HashMap<String, i64>),
    /// The invocation itself failed (panic, timeout).
    FunctionError(String),
}

pub struct Esm {
    pub mapping: Mapping,
    pub function: SharedKafkaFunction,
    pub settings: KafkaSettings,
    pub dead_letters: KafkaPublisher,
    pub cluster_arn: String,
    pub stats: Stats,
    pub index: usize,
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
        loop {
            let first = tokio::select! {
                _ = shutdown.changed() => break,
                message = consumer.recv() => message,
            };
            let mut batch = Vec::new();
            match first {
                Ok(message) => batch.push(record(&message)),
                Err(KafkaError::PartitionEOF(partition)) => {
                    self.note_end(&consumer, partition);
                    continue;
                }
                Err(e) => {
                    warn!(function = %m.function, error = %e, "poll failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
            self.fill(&consumer, &mut batch).await;
            let unsettled = self.settle(batch.clone()).await;
            // Records from the first unsettled one of a partition on are read again, not committed.
            batch.retain(|r| {
                unsettled
                    .get(&r.id.topic_partition())
                    .is_none_or(|first| r.id.offset < first.offset)
            });
            self.commit(&consumer, &batch);
            if !unsettled.is_empty() {
                self.rewind(&consumer, &unsettled);
                tokio::time::sleep(MAX_BACKOFF).await;
            }
        }
        // Stopping: what was settled is committed for sure before the consumer goes (every record
        // received was settled; the position is right after the last).
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            warn!(function = %m.function, error = %e, "final offset commit failed; records will be redelivered");
        }
        info!(function = %m.function, "event source mapping stopped");
        Ok(())
    }

    /// Adds records until the batch is full, 6 MB, or the batching window closes (window 0: while
    /// records are already there).
    async fn fill(&self, consumer: &StreamConsumer, batch: &mut Vec<Record>) {
        let m = &self.mapping;
        let deadline = Instant::now() + Duration::from_millis(m.batching_window_ms.max(5));
        let mut bytes: usize = batch.iter().map(Record::size).sum();
        while batch.len() < m.batch_size {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, consumer.recv()).await {
                Ok(Ok(message)) => {
                    let r = record(&message);
                    if bytes + r.size() > MAX_EVENT_BYTES {
                        // Too big for this invocation: read it again next time.
                        let _ = consumer.seek(
                            &r.id.topic,
                            r.id.partition,
                            Offset::Offset(r.id.offset),
                            Duration::from_secs(1),
                        );
                        break;
                    }
                    bytes += r.size();
                    batch.push(r);
                }
                Ok(Err(KafkaError::PartitionEOF(partition))) => {
                    self.note_end(consumer, partition);
                    if m.batching_window_ms == 0 {
                        break;
                    }
                }
                Ok(Err(_)) | Err(_) => break,
            }
        }
    }

    /// Runs the batch to completion: retries, bisects, and finally dead-letters what never
    /// succeeds. Returns, per `topic-partition`, the first record it could not settle (the
    /// on-failure destination was down): those records are to be read again.
    async fn settle(&self, batch: Vec<Record>) -> Unsettled {
        let mut unsettled = HashMap::new();
        let mut queue = vec![(batch, 0_i64)];
        while let Some((records, attempts)) = queue.pop() {
            if records.is_empty() {
                continue;
            }
            match self.invoke(&records).await {
                Outcome::Success => {}
                Outcome::PartialFailure(lowest) => {
                    // Retry, per partition, from the lowest failed offset; the rest succeeded.
                    let failed: Vec<Record> = records
                        .into_iter()
                        .filter(|r| {
                            lowest
                                .get(&r.id.topic_partition())
                                .is_some_and(|low| r.id.offset >= *low)
                        })
                        .collect();
                    self.retry_or_give_up(
                        &mut queue,
                        &mut unsettled,
                        failed,
                        attempts,
                        "the function reported the records failed",
                    )
                    .await;
                }
                Outcome::FunctionError(reason) => {
                    self.stats(|s| s.function_errors += 1);
                    if self.mapping.bisect_on_error && records.len() > 1 {
                        // Halves in order: the first half is settled before the second.
                        let mut first = records;
                        let second = first.split_off(first.len() / 2);
                        queue.push((second, attempts));
                        queue.push((first, attempts));
                    } else {
                        self.retry_or_give_up(&mut queue, &mut unsettled, records, attempts, &reason)
                            .await;
                    }
                }
            }
        }
        unsettled
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

    async fn retry_or_give_up(
        &self,
        queue: &mut Vec<(Vec<Record>, i64)>,
        unsettled: &mut Unsettled,
        records: Vec<Record>,
        attempts: i64,
        reason: &str,
    ) {
        let max = self.mapping.max_retries;
        if max >= 0 && attempts >= max {
            // Only the first record of each partition is given up on; the records queued behind it
            // get a fresh set of attempts, so one poison record costs no good ones.
            let mut firsts: Vec<Record> = Vec::new();
            let mut rest = Vec::new();
            for r in records {
                if firsts.iter().any(|f| f.id.topic_partition() == r.id.topic_partition()) {
                    rest.push(r);
                } else {
                    firsts.push(r);
                }
            }
            let reason = format!("retries exhausted after {} attempts: {reason}", attempts + 1);
            if self.give_up(&firsts, &reason).await {
                queue.push((rest, 0));
            } else {
                for r in &firsts {
                    let first = unsettled.entry(r.id.topic_partition()).or_insert_with(|| r.id.clone());
                    if r.id.offset < first.offset {
                        *first = r.id.clone();
                    }
                }
                // Later batches of these partitions wait for the read-again too.
                queue
                    .iter_mut()
                    .for_each(|(q, _)| q.retain(|r| !unsettled.contains_key(&r.id.topic_partition())));
            }
            return;
        }
        let backoff = FIRST_BACKOFF.saturating_mul(1 << attempts.clamp(0, 5)).min(MAX_BACKOFF);
        self.stats(|s| s.retries += 1);
        tokio::time::sleep(backoff).await;
        queue.push((records, attempts + 1));
    }

    /// The on-failure destination: each record with the reason, then the mapping moves on.
    /// `false` when the destination stayed down for `DESTINATION_PATIENCE`: nothing is dropped,
    /// the records are left uncommitted to be read again.
    async fn give_up(&self, records: &[Record], reason: &str) -> bool {
        let topic = self
            .mapping
            .on_failure_topic
            .clone()
            .unwrap_or_else(|| format!("{}-dlq", self.mapping.function));
        let destination = KafkaDeadLetters::to_topic(self.dead_letters.clone(), &self.mapping.consumer_group, &topic);
        let deadline = Instant::now() + DESTINATION_PATIENCE;
        for r in records {
            let source = r.id.to_string();
            let raw = RawRecord {
                id: r.id.clone(),
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.clone(),
            };
            let mut wait = FIRST_BACKOFF;
            while let Err(e) = destination.dead_letter(&raw, reason).await {
                if Instant::now() >= deadline {
                    error!(function = %self.mapping.function, record = %source, error = %e.chain(), "on-failure destination down; the record will be read again");
                    return false;
                }
                error!(function = %self.mapping.function, record = %source, error = %e.chain(), "on-failure destination unavailable; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_BACKOFF);
            }
            warn!(function = %self.mapping.function, record = %source, %topic, %reason, "sent to the on-failure destination");
            self.stats(|s| s.dead_lettered += 1);
        }
        true
    }

    async fn invoke(&self, records: &[Record]) -> Outcome {
        let m = &self.mapping;
        let span = describe(records);
        // An event that cannot be built fails the invocation: an empty event would "succeed"
        // and the batch would be committed unprocessed.
        let event = match msk_event(records, &self.cluster_arn, &self.settings.brokers) {
            Ok(event) => event,
            Err(e) => {
                error!(function = %m.function, batch = %span, error = %e, outcome = "function error", "could not build the event");
                return Outcome::FunctionError(format!("could not build the event: {e}"));
            }
        };
        let started = Instant::now();
        let function = self.function.clone();
        // A panicking handler is a failed invocation, as a crashed Lambda would be.
        let call = async move { function.invoke_batch(&event).await };
        let result = tokio::time::timeout(
            Duration::from_secs(m.timeout_secs),
            std::panic::AssertUnwindSafe(call).catch_unwind(),
        )
        .await;
        let duration_ms = started.elapsed().as_millis();
        self.stats(|s| {
            s.invocations += 1;
            s.records += records.len() as u64;
        });
        match result {
            Ok(Ok(response)) if response.batch_item_failures.is_empty() || !m.report_batch_item_failures => {
                info!(function = %m.function, records = records.len(), batch = %span, duration_ms, outcome = "success", "invoked");
                Outcome::Success
            }
            Ok(Ok(response)) => {
                let mut lowest: HashMap<String, i64> = HashMap::new();
                for f in &response.batch_item_failures {
                    let id = &f.item_identifier;
                    let low = lowest.entry(id.partition.clone()).or_insert(id.offset);
                    *low = (*low).min(id.offset);
                }
                info!(function = %m.function, records = records.len(), batch = %span, duration_ms, outcome = "partial failure", failed_from = ?lowest, "invoked");
                Outcome::PartialFailure(lowest)
            }
            Ok(Err(_panic)) => {
                error!(function = %m.function, batch = %span, duration_ms, outcome = "function error", "the handler panicked");
                Outcome::FunctionError("the function failed (panic)".into())
            }
            Err(_) => {
                error!(function = %m.function, batch = %span, duration_ms, outcome = "timeout", "invocation timed out");
                Outcome::FunctionError(format!("the function timed out after {} s", m.timeout_secs))
            }
        }
    }

    fn commit(&self, consumer: &StreamConsumer, batch: &[Record]) {
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for r in batch {
            let n = next.entry((r.id.topic.clone(), r.id.partition)).or_insert(0);
            *n = (*n).max(r.id.offset + 1);
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

fn record(m: &rdkafka::message::BorrowedMessage<'_>) -> Record {
    let headers = headers_of(m);
    Record {
        id: RecordId {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
        },
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().unwrap_or_default().to_vec(),
        headers,
        timestamp_ms: m.timestamp().to_millis().unwrap_or_default(),
    }
}

/// `chat-messages-0@3..5, chat-messages-2@9` for the invocation log.
fn describe(records: &[Record]) -> String {
    let mut ranges: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in records {
        let e = ranges
            .entry(r.id.topic_partition())
            .or_insert((r.id.offset, r.id.offset));
        e.0 = e.0.min(r.id.offset);
        e.1 = e.1.max(r.id.offset);
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
