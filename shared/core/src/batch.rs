//! The batch driver every Kafka-triggered function runs on: partitions concurrently, records of a
//! partition in order. The driver reads each record into the function's event type; a record that
//! cannot be read (malformed, unknown version) goes to the consumer's dead-letter topic with its
//! reason and the partition moves on. The handler gets a partition's events in order; a permanent
//! failure of one event dead-letters that record and the rest go on, a retryable one stops the
//! partition and is reported, with every later record of that partition, as a batch item
//! failure, so Lambda retries from there and order holds.

use std::borrow::Cow;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::future::join_all;
use relaychat_schema::events::TopicEvent;
use relaychat_schema::kafka::{self, BatchRecord, MskEvent, PartitionBatch, RawRecord};
use relaychat_schema::{BatchItemFailure, ConversationId, DecodedRecord, KafkaBatchResponse, MessageId, SchemaError};
use tracing::{Instrument, Span, error, info_span, warn};

use crate::Error;
use crate::ports::DeadLetters;
use crate::trace::Trace;

/// What a function reads from each record: a topic event, or its own type (analytics).
pub trait FromRecord: Sized + Send + Sync {
    fn from_record(record: &DecodedRecord) -> Result<Self, SchemaError>;
    /// The message it is about, if any (on the record's span).
    fn message_id(&self) -> Option<MessageId>;
    /// The conversation it is about, if any (on the record's span).
    fn conversation_id(&self) -> Option<&ConversationId>;
    /// When the message it carries was sent, if it carries one (the batch's message age).
    fn sent_at(&self) -> Option<DateTime<Utc>> {
        None
    }
}

impl<E: TopicEvent + Send + Sync> FromRecord for E {
    fn from_record(record: &DecodedRecord) -> Result<Self, SchemaError> {
        record.parse()
    }
    fn message_id(&self) -> Option<MessageId> {
        TopicEvent::message_id(self)
    }
    fn conversation_id(&self) -> Option<&ConversationId> {
        TopicEvent::conversation_id(self)
    }
    fn sent_at(&self) -> Option<DateTime<Utc>> {
        TopicEvent::sent_at(self)
    }
}

/// A record read into its event.
#[derive(Debug)]
pub struct Parsed<'r, E> {
    pub record: &'r DecodedRecord,
    pub event: E,
    /// Handled (or dead-lettered): a handler asked again for the rest of a run skips it.
    done: AtomicBool,
}

impl<'r, E> Parsed<'r, E> {
    pub fn new(record: &'r DecodedRecord, event: E) -> Self {
        Self {
            record,
            event,
            done: AtomicBool::new(false),
        }
    }

    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    pub fn mark_done(&self) {
        self.done.store(true, Ordering::Release);
    }
}

impl<E: FromRecord> Parsed<'_, E> {
    /// The trace span a record is handled in: a child of its producer's (its `traceparent`
    /// header), or a new trace when it carries none.
    pub fn trace(&self) -> Trace {
        Trace::continue_from(self.record.header(crate::trace::TRACEPARENT))
    }

    /// The span a record is handled in: where it came from, what it is about, and its trace.
    pub fn span(&self, trace: &Trace) -> Span {
        let id = &self.record.id;
        info_span!(
            "record",
            topic = %id.topic,
            partition = id.partition,
            offset = id.offset,
            message_id = self.event.message_id().map(tracing::field::display),
            conversation_id = self.event.conversation_id().map(tracing::field::display),
            trace_id = %trace.trace_hex(),
            span_id = %trace.span_hex(),
            parent_span_id = trace.parent_hex().map(tracing::field::display),
        )
    }
}

/// A function's work on its records.
pub trait RecordHandler: Sync {
    type Event: FromRecord;
    /// Handles one partition's events (those not yet done), as many at a time as it likes, each
    /// key's in order. `Err((i, e))`: every event before `i` is done and event `i` failed with `e`;
    /// events after `i` may be done too (they are marked so).
    fn handle(&self, events: &[Parsed<'_, Self::Event>]) -> impl Future<Output = Result<(), (usize, Error)>> + Send;
}

/// A function that handles one event at a time (all but analytics), each in its own span.
pub trait EachEvent: Sync {
    type Event: FromRecord;
    fn handle_event(&self, event: &Self::Event) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Most keys of a partition handled at once. Records with the same key stay in order (the key is
/// what the producer orders by: a conversation, a reader); different keys need not wait for
/// each other, so a partition is not bound to one record's round trips at a time.
pub const MAX_KEYS_IN_FLIGHT: usize = 16;

impl<T: EachEvent> RecordHandler for T {
    type Event = T::Event;

    async fn handle(&self, events: &[Parsed<'_, T::Event>]) -> Result<(), (usize, Error)> {
        // Each key's events in order, by index; a key stops at its first failure.
        let mut keys: Vec<(Option<&[u8]>, Vec<usize>)> = Vec::new();
        for (i, parsed) in events.iter().enumerate().filter(|(_, p)| !p.is_done()) {
            let key = parsed.record.key.as_deref();
            match keys.iter_mut().find(|(k, _)| *k == key) {
                Some((_, indices)) => indices.push(i),
                None => keys.push((key, vec![i])),
            }
        }
        let runs: Vec<_> = keys
            .into_iter()
            .map(|(_, indices)| handle_key(self, events, indices))
            .collect();
        let outcomes: Vec<Option<(usize, Error)>> = futures::stream::iter(runs)
            .buffer_unordered(MAX_KEYS_IN_FLIGHT)
            .collect()
            .await;
        let first_failures = outcomes.into_iter().flatten();
        // Every event before the lowest failure is done: its key's earlier ones, and all of the
        // other keys' (their first failures, if any, come later).
        match first_failures.into_iter().min_by_key(|(i, _)| *i) {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }
}

/// One key's events in order, until the first that fails: its index and why.
async fn handle_key<T: EachEvent>(
    handler: &T,
    events: &[Parsed<'_, T::Event>],
    indices: Vec<usize>,
) -> Option<(usize, Error)> {
    for i in indices {
        let parsed = &events[i];
        let trace = parsed.trace();
        let handled = crate::trace::within(trace, handler.handle_event(&parsed.event)).instrument(parsed.span(&trace));
        match handled.await {
            Ok(()) => parsed.mark_done(),
            Err(e) => return Some((i, e)),
        }
    }
    None
}

/// Runs `handler` over every record of the event and returns the partial-batch response; what it
/// came to is measured (`measure`).
pub async fn run_batch<H: RecordHandler, D: DeadLetters>(
    event: &MskEvent,
    dead_letters: &D,
    handler: &H,
) -> KafkaBatchResponse {
    let started = std::time::Instant::now();
    let counted = CountedDeadLetters {
        inner: dead_letters,
        count: AtomicU64::new(0),
    };
    let oldest = std::sync::Mutex::new(None);
    let partitions = event.partitions.iter();
    let failures: Vec<BatchItemFailure> = join_all(partitions.map(|p| run_partition(p, &counted, handler, &oldest)))
        .await
        .into_iter()
        .flatten()
        .collect();
    let outcome = crate::measure::BatchOutcome {
        received: event.partitions.iter().map(|p| p.records.len() as u64).sum(),
        retried: failures.len() as u64,
        dead_lettered: counted.count.load(Ordering::Relaxed),
    };
    crate::measure::batch(outcome, started.elapsed());
    if let Some(sent_at) = oldest.into_inner().ok().flatten() {
        crate::measure::oldest_message(sent_at, Utc::now());
    }
    KafkaBatchResponse {
        batch_item_failures: failures,
    }
}

/// The function's dead letters, counted.
struct CountedDeadLetters<'a, D> {
    inner: &'a D,
    count: AtomicU64,
}

impl<D: DeadLetters> DeadLetters for CountedDeadLetters<'_, D> {
    async fn dead_letter(&self, record: &RawRecord, reason: &str) -> Result<(), Error> {
        self.inner.dead_letter(record, reason).await?;
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

async fn run_partition<H: RecordHandler, D: DeadLetters>(
    batch: &PartitionBatch,
    dead_letters: &D,
    handler: &H,
    oldest: &std::sync::Mutex<Option<DateTime<Utc>>>,
) -> Vec<BatchItemFailure> {
    let records = &batch.records;
    // Consecutive readable records, handled together; `start`: the index of the first.
    let (mut run, mut start) = (Vec::new(), 0);
    for (index, record) in records.iter().enumerate() {
        let unreadable = match record {
            Ok(decoded) => match H::Event::from_record(decoded) {
                Ok(event) => {
                    if let (Some(sent_at), Ok(mut oldest)) = (event.sent_at(), oldest.lock()) {
                        *oldest = Some(oldest.map_or(sent_at, |o| o.min(sent_at)));
                    }
                    if run.is_empty() {
                        start = index;
                    }
                    run.push(Parsed::new(decoded, event));
                    continue;
                }
                Err(e) => (Cow::Owned(RawRecord::from(decoded)), Failure::of(&Error::Invalid(e))),
            },
            // Undecodable data fails the same way every time: permanent.
            Err(bad) => (Cow::Borrowed(&bad.raw), Failure::permanent(&bad.error)),
        };
        // What came before it is handled first: order holds.
        if let Err(at) = handle_run(handler, dead_letters, std::mem::take(&mut run)).await {
            return failures_from(&records[start + at..]);
        }
        let (raw, failure) = unreadable;
        if !settle_failure(dead_letters, &raw, failure).await {
            return failures_from(&records[index..]);
        }
    }
    match handle_run(handler, dead_letters, run).await {
        Ok(()) => Vec::new(),
        Err(at) => failures_from(&records[start + at..]),
    }
}

/// Hands the run to the handler; an event that failed for good is dead-lettered and the handler
/// goes on after it. `Err(i)`: the run stopped at its event `i` (retryable, or not dead-lettered).
async fn handle_run<H: RecordHandler, D: DeadLetters>(
    handler: &H,
    dead_letters: &D,
    run: Vec<Parsed<'_, H::Event>>,
) -> Result<(), usize> {
    let mut from = 0;
    while from < run.len() {
        let Err((i, failure)) = handler.handle(&run[from..]).await else {
            return Ok(());
        };
        let at = (from + i).min(run.len() - 1);
        if !settle_failure(dead_letters, &RawRecord::from(run[at].record), Failure::of(&failure)).await {
            return Err(at);
        }
        run[at].mark_done();
        from = at + 1;
    }
    Ok(())
}

/// Why a record failed, as a dead letter says it, and whether a retry could help.
struct Failure {
    reason: String,
    retryable: bool,
}

impl Failure {
    fn of(error: &Error) -> Self {
        Self {
            reason: error.chain(),
            retryable: error.is_retryable(),
        }
    }

    fn permanent(error: &SchemaError) -> Self {
        Self {
            reason: crate::chain(error),
            retryable: false,
        }
    }
}

/// Dead-letters a permanent failure (`true`: the partition moves on); a retryable one, or one
/// whose dead-lettering failed, is `false`: the partition stops here.
async fn settle_failure<D: DeadLetters>(dead_letters: &D, raw: &RawRecord, failure: Failure) -> bool {
    let Failure { reason, retryable } = failure;
    if retryable {
        warn!(record = %raw.id, %reason, "retryable failure; partition stops here for a retry");
        return false;
    }
    match dead_letters.dead_letter(raw, &reason).await {
        Ok(()) => {
            warn!(record = %raw.id, %reason, "permanent failure; record dead-lettered");
            true
        }
        Err(dlq) => {
            error!(record = %raw.id, %reason, dead_letter_error = %dlq.chain(), "could not dead-letter; partition stops here");
            false
        }
    }
}

/// The batch item failures for these records (a failed one and every later one of its partition).
fn failures_from(records: &[BatchRecord]) -> Vec<BatchItemFailure> {
    records.iter().map(|r| BatchItemFailure::new(kafka::id_of(r))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Memory;
    use relaychat_schema::RecordId;
    use relaychat_schema::kafka::{EventSource, msk_event, msk_event_json};
    use std::sync::Mutex;

    /// A record's value as text, with the record it came from.
    struct Line {
        id: RecordId,
        text: String,
    }

    impl FromRecord for Line {
        fn from_record(record: &DecodedRecord) -> Result<Self, SchemaError> {
            Ok(Self {
                id: record.id.clone(),
                text: String::from_utf8(record.value.clone()).map_err(|e| SchemaError::InvalidField {
                    field: "value",
                    reason: e.to_string(),
                })?,
            })
        }
        fn message_id(&self) -> Option<MessageId> {
            None
        }
        fn conversation_id(&self) -> Option<&ConversationId> {
            None
        }
    }

    /// Fails records whose value says so; remembers the order it saw the others in.
    #[derive(Default)]
    struct Script {
        seen: Mutex<Vec<String>>,
    }

    impl EachEvent for Script {
        type Event = Line;
        async fn handle_event(&self, line: &Line) -> Result<(), Error> {
            match line.text.as_str() {
                "throttle" => Err(Error::unavailable("write", "throttled")),
                "reject" => Err(Error::rejected("write", "validation")),
                _ => {
                    self.seen.lock().unwrap().push(line.id.to_string());
                    Ok(())
                }
            }
        }
    }

    fn event(parts: &[(&str, i32, &[&[u8]])]) -> MskEvent {
        event_json(parts, |_| ())
    }

    /// The event of these records, its JSON bent by `edit` first.
    fn event_json(parts: &[(&str, i32, &[&[u8]])], edit: impl FnOnce(&mut serde_json::Value)) -> MskEvent {
        let records: Vec<DecodedRecord> = parts
            .iter()
            .flat_map(|(topic, partition, values)| {
                values.iter().enumerate().map(move |(i, v)| {
                    let id = RecordId {
                        topic: topic.to_string(),
                        partition: *partition,
                        offset: 10 + i as i64,
                    };
                    DecodedRecord::new(id, Some(b"k"), v)
                })
            })
            .collect();
        let mut json = msk_event_json(&records, &EventSource::default());
        edit(&mut json);
        MskEvent::from_json(&json).unwrap()
    }

    #[tokio::test]
    async fn a_retryable_failure_stops_only_its_partition_from_that_record_on() {
        let e = event(&[("t", 0, &[b"a", b"throttle", b"c"]), ("t", 1, &[b"x", b"y"])]);
        let dlq = Memory::default();
        let script = Script::default();
        let resp = run_batch(&e, &dlq, &script).await;
        let failed: Vec<(String, i64)> = resp
            .batch_item_failures
            .iter()
            .map(|f| (f.item_identifier.partition.clone(), f.item_identifier.offset))
            .collect();
        assert_eq!(failed, vec![("t-0".to_owned(), 11), ("t-0".to_owned(), 12)]);
        let mut seen = script.seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, vec!["t-0@10", "t-1@10", "t-1@11"]);
        assert!(dlq.dead_letters().is_empty());
    }

    #[tokio::test]
    async fn permanent_failures_are_dead_lettered_with_the_reason_and_the_partition_moves_on() {
        // and a record whose value is not base64 at all
        let bad = serde_json::json!({"topic": "t", "partition": 0, "offset": 13, "timestamp": 0,
                                     "value": "***", "headers": []});
        let e = event_json(&[("t", 0, &[b"a", b"reject", b"c"])], |json| {
            json["records"]["t-0"].as_array_mut().unwrap().push(bad);
        });
        let dlq = Memory::default();
        let script = Script::default();
        let resp = run_batch(&e, &dlq, &script).await;
        assert!(resp.batch_item_failures.is_empty());
        assert_eq!(*script.seen.lock().unwrap(), vec!["t-0@10", "t-0@12"]);
        let dead = dlq.dead_letters();
        assert_eq!(dead.len(), 2);
        assert_eq!((dead[0].0.id.offset, dead[0].0.value.as_slice()), (11, &b"reject"[..]));
        assert!(dead[0].1.contains("write was rejected: validation"), "{}", dead[0].1);
        assert_eq!((dead[1].0.id.offset, dead[1].0.value.as_slice()), (13, &b"***"[..]));
        assert!(dead[1].1.contains("not valid base64"), "{}", dead[1].1);
    }

    #[tokio::test]
    async fn when_the_dead_letter_topic_fails_the_record_is_reported_not_lost() {
        let e = event(&[("t", 0, &[b"reject", b"b"])]);
        let dlq = Memory::default();
        dlq.fail_publishing();
        let resp = run_batch(&e, &dlq, &Script::default()).await;
        assert_eq!(resp.batch_item_failures.len(), 2);
        assert_eq!(resp.batch_item_failures[0].item_identifier.offset, 10);
    }

    /// One partition of `(key, value)` records at offsets 10, 11, ...
    fn keyed_event(records: &[(&str, &str)]) -> MskEvent {
        let records: Vec<DecodedRecord> = records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| {
                let id = RecordId {
                    topic: "t".into(),
                    partition: 0,
                    offset: 10 + i as i64,
                };
                DecodedRecord::new(id, Some(key.as_bytes()), value.as_bytes())
            })
            .collect();
        msk_event(&records, &EventSource::default()).unwrap()
    }

    /// Takes 10 ms a record (on a paused clock); remembers when each began and ended.
    #[derive(Default)]
    struct Slow {
        log: Mutex<Vec<(String, &'static str, tokio::time::Instant)>>,
        in_flight: std::sync::atomic::AtomicUsize,
        most_in_flight: std::sync::atomic::AtomicUsize,
    }

    impl EachEvent for Slow {
        type Event = Line;
        async fn handle_event(&self, line: &Line) -> Result<(), Error> {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.most_in_flight.fetch_max(now, SeqCst);
            self.log
                .lock()
                .unwrap()
                .push((line.text.clone(), "start", tokio::time::Instant::now()));
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            self.in_flight.fetch_sub(1, SeqCst);
            let outcome = match line.text.as_str() {
                t if t.starts_with("throttle") => Err(Error::unavailable("write", "throttled")),
                t if t.starts_with("reject") => Err(Error::rejected("write", "validation")),
                _ => Ok(()),
            };
            self.log
                .lock()
                .unwrap()
                .push((line.text.clone(), "end", tokio::time::Instant::now()));
            outcome
        }
    }

    impl Slow {
        fn started(&self) -> Vec<String> {
            let log = self.log.lock().unwrap();
            log.iter()
                .filter(|(_, what, _)| *what == "start")
                .map(|(v, _, _)| v.clone())
                .collect()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_keys_records_stay_in_order_while_other_keys_run_beside_them() {
        // GIVEN three conversations' records interleaved in one partition
        let e = keyed_event(&[
            ("a", "a1"),
            ("b", "b1"),
            ("a", "a2"),
            ("c", "c1"),
            ("b", "b2"),
            ("a", "a3"),
        ]);
        let slow = Slow::default();
        let started = tokio::time::Instant::now();
        // WHEN the batch runs
        let resp = run_batch(&e, &Memory::default(), &slow).await;
        // THEN every record is handled once, each key's in order, the keys side by side
        assert!(resp.batch_item_failures.is_empty());
        let order = slow.started();
        let position = |v: &str| order.iter().position(|o| o == v).unwrap();
        assert!(
            position("a1") < position("a2") && position("a2") < position("a3"),
            "{order:?}"
        );
        assert!(position("b1") < position("b2"), "{order:?}");
        assert_eq!(order.len(), 6);
        assert_eq!(slow.most_in_flight.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(
            started.elapsed(),
            std::time::Duration::from_millis(30),
            "the longest key's three records"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_retryable_failure_stops_its_key_and_the_partition_is_retried_from_it() {
        let e = keyed_event(&[("a", "a1"), ("b", "throttle-b1"), ("a", "a2"), ("b", "b2")]);
        let slow = Slow::default();
        let resp = run_batch(&e, &Memory::default(), &slow).await;
        let failed: Vec<i64> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.offset)
            .collect();
        assert_eq!(failed, vec![11, 12, 13], "from the failed record on, as Lambda retries");
        assert!(
            !slow.started().contains(&"b2".to_owned()),
            "b's later record waits for b1"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_is_dead_lettered_and_nothing_else_runs_twice() {
        let e = keyed_event(&[("a", "a1"), ("b", "reject-b1"), ("a", "a2"), ("b", "b2"), ("c", "c1")]);
        let slow = Slow::default();
        let dlq = Memory::default();
        let resp = run_batch(&e, &dlq, &slow).await;
        assert!(resp.batch_item_failures.is_empty());
        let mut started = slow.started();
        started.sort();
        assert_eq!(started, vec!["a1", "a2", "b2", "c1", "reject-b1"], "each once");
        let dead = dlq.dead_letters();
        assert_eq!((dead.len(), dead[0].0.id.offset), (1, 11));
    }
}
