//! The batch driver every Kafka-triggered function runs on: partitions concurrently, records of a
//! partition in order. The driver reads each record into the function's event type; a record that
//! cannot be read (malformed, unknown version) goes to the consumer's dead-letter topic with its
//! reason and the partition moves on. The handler gets a partition's events in order; a permanent
//! failure of one event dead-letters that record and the rest go on, a retryable one stops the
//! partition and is reported, with every later record of that partition, as a batch item
//! failure, so Lambda retries from there and order holds.

use std::future::Future;

use aws_lambda_events::event::kafka::KafkaEvent;
use futures::future::join_all;
use relaychat_schema::events::TopicEvent;
use relaychat_schema::kafka::{self, PartitionBatch, RawRecord};
use relaychat_schema::{
    BatchItemFailure, ConversationId, DecodedRecord, KafkaBatchResponse, MessageId, RecordId, SchemaError,
};
use tracing::{Instrument, Span, error, info_span, warn};

use crate::Error;
use crate::ports::DeadLetters;

/// What a function reads from each record: a topic event, or its own type (analytics).
pub trait FromRecord: Sized + Send + Sync {
    fn from_record(record: &DecodedRecord) -> Result<Self, SchemaError>;
    /// The message it is about, if any (on the record's span).
    fn message_id(&self) -> Option<MessageId>;
    /// The conversation it is about, if any (on the record's span).
    fn conversation_id(&self) -> Option<&ConversationId>;
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
}

/// A record read into its event.
#[derive(Debug, Clone)]
pub struct Parsed<E> {
    pub record: DecodedRecord,
    pub event: E,
}

impl<E: FromRecord> Parsed<E> {
    /// The span a record is handled in: where it came from and what it is about.
    pub fn span(&self) -> Span {
        let id = &self.record.id;
        info_span!(
            "record",
            topic = %id.topic,
            partition = id.partition,
            offset = id.offset,
            message_id = self.event.message_id().map(tracing::field::display),
            conversation_id = self.event.conversation_id().map(tracing::field::display),
        )
    }
}

/// A function's work on its records.
pub trait RecordHandler: Sync {
    type Event: FromRecord;
    /// Handles one partition's events, in order, as many at a time as it likes. `Err((i, e))`:
    /// the events before `i` are done and event `i` failed with `e`.
    fn handle(&self, events: &[Parsed<Self::Event>]) -> impl Future<Output = Result<(), (usize, Error)>> + Send;
}

/// A function that handles one event at a time (all but analytics); each is its own span.
pub trait EachEvent: Sync {
    type Event: FromRecord;
    fn handle_event(&self, event: &Self::Event) -> impl Future<Output = Result<(), Error>> + Send;
}

impl<T: EachEvent> RecordHandler for T {
    type Event = T::Event;

    async fn handle(&self, events: &[Parsed<T::Event>]) -> Result<(), (usize, Error)> {
        for (i, parsed) in events.iter().enumerate() {
            self.handle_event(&parsed.event)
                .instrument(parsed.span())
                .await
                .map_err(|e| (i, e))?;
        }
        Ok(())
    }
}

/// Runs `handler` over every record of the event and returns the partial-batch response.
pub async fn run_batch<H: RecordHandler, D: DeadLetters>(
    event: &KafkaEvent,
    dead_letters: &D,
    handler: &H,
) -> KafkaBatchResponse {
    let partitions = kafka::partitions(event);
    let failures = join_all(partitions.into_iter().map(|p| run_partition(p, dead_letters, handler))).await;
    KafkaBatchResponse {
        batch_item_failures: failures.into_iter().flatten().collect(),
    }
}

async fn run_partition<H: RecordHandler, D: DeadLetters>(
    batch: PartitionBatch,
    dead_letters: &D,
    handler: &H,
) -> Vec<BatchItemFailure> {
    let ids = batch.ids();
    // Consecutive readable records, handled together; `start`: the index of the first.
    let (mut run, mut start) = (Vec::new(), 0);
    for (index, record) in batch.records.into_iter().enumerate() {
        let unreadable = match record {
            Ok(decoded) => match H::Event::from_record(&decoded) {
                Ok(event) => {
                    if run.is_empty() {
                        start = index;
                    }
                    run.push(Parsed { record: decoded, event });
                    continue;
                }
                Err(e) => (RawRecord::from(&decoded), Error::Invalid(e)),
            },
            Err(bad) => (bad.raw, Error::Invalid(bad.error)),
        };
        // What came before it is handled first: order holds.
        if let Err(at) = handle_run(handler, dead_letters, std::mem::take(&mut run)).await {
            return failures_from(&ids[start + at..]);
        }
        let (raw, error) = unreadable;
        if settle_failure(dead_letters, &raw, error).await.is_err() {
            return failures_from(&ids[index..]);
        }
    }
    match handle_run(handler, dead_letters, run).await {
        Ok(()) => Vec::new(),
        Err(at) => failures_from(&ids[start + at..]),
    }
}

/// Hands the run to the handler; an event that failed for good is dead-lettered and the handler
/// goes on after it. `Err(i)`: the run stopped at its event `i` (retryable, or not dead-lettered).
async fn handle_run<H: RecordHandler, D: DeadLetters>(
    handler: &H,
    dead_letters: &D,
    run: Vec<Parsed<H::Event>>,
) -> Result<(), usize> {
    let mut from = 0;
    while from < run.len() {
        let Err((i, failure)) = handler.handle(&run[from..]).await else {
            return Ok(());
        };
        let at = (from + i).min(run.len() - 1);
        if settle_failure(dead_letters, &RawRecord::from(&run[at].record), failure)
            .await
            .is_err()
        {
            return Err(at);
        }
        from = at + 1;
    }
    Ok(())
}

/// Dead-letters a permanent failure (`Ok`: the partition moves on); a retryable one, or one whose
/// dead-lettering failed, is `Err`: the partition stops here.
pub async fn settle_failure<D: DeadLetters>(dead_letters: &D, raw: &RawRecord, failure: Error) -> Result<(), Error> {
    let reason = failure.chain();
    if failure.is_retryable() {
        warn!(record = %raw.id, %reason, "retryable failure; partition stops here for a retry");
        return Err(failure);
    }
    match dead_letters.dead_letter(raw, &reason).await {
        Ok(()) => {
            warn!(record = %raw.id, %reason, "permanent failure; record dead-lettered");
            Ok(())
        }
        Err(dlq) => {
            error!(record = %raw.id, %reason, dead_letter_error = %dlq.chain(), "could not dead-letter; partition stops here");
            Err(dlq)
        }
    }
}

/// The batch item failures for these records (a failed one and every later one of its partition).
fn failures_from(ids: &[RecordId]) -> Vec<BatchItemFailure> {
    ids.iter().map(BatchItemFailure::new).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Memory;
    use relaychat_schema::kafka::{EventSource, msk_event};
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

    fn event(parts: &[(&str, i32, &[&[u8]])]) -> KafkaEvent {
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
        msk_event(&records, &EventSource::default()).unwrap()
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
        let mut e = event(&[("t", 0, &[b"a", b"reject", b"c"])]);
        // and a record whose value is not base64 at all
        let bad = serde_json::json!({"topic": "t", "partition": 0, "offset": 13, "timestamp": 0,
                                     "value": "***", "headers": []});
        e.records
            .get_mut("t-0")
            .unwrap()
            .push(serde_json::from_value(bad).unwrap());
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
}
