//! analytics: counters per day per conversation and per user. Each record is counted once by its
//! own identity (its message or event id), remembered atomically with its increments, so neither
//! a replay nor a recreated topic (offsets starting again at 0) can count twice or skip.

use std::collections::BTreeSet;

use aws_lambda_events::event::kafka::KafkaEvent;
use chrono::{DateTime, Utc};
use futures::future::join_all;
use relaychat_schema::kafka::{self, PartitionBatch, RawRecord};
use relaychat_schema::{AnalyticsEvent, BatchItemFailure, ChatMessage, DecodedRecord, KafkaBatchResponse};
use tracing::{Instrument, debug, info_span, warn};

use crate::Error;
use crate::batch::{failures_from, settle_failure};
use crate::ports::{AnalyticsStore, Counted, CounterKey, DeadLetters};

/// Most items (records remembered plus counter rows) in one atomic apply: DynamoDB transactions
/// take 100.
pub const MAX_ITEMS_PER_APPLY: usize = 90;

fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

fn key(counter: String, field: &str) -> CounterKey {
    CounterKey {
        counter,
        field: field.to_owned(),
    }
}

/// The counters a chat message adds to.
pub fn counters_for_message(m: &ChatMessage) -> Vec<CounterKey> {
    let d = day(m.sent_at);
    vec![
        key(format!("conv#{}#{d}", m.conversation_id), "messages"),
        key(format!("user#{}#{d}", m.sender_id), "messagesSent"),
    ]
}

/// The counters an analytics event adds to.
pub fn counters_for_event(e: &AnalyticsEvent) -> Vec<CounterKey> {
    let d = day(e.at);
    let mut keys = vec![key(format!("user#{}#{d}", e.user_id), e.kind.as_str())];
    if let Some(conv) = &e.conversation_id {
        keys.push(key(format!("conv#{conv}#{d}"), e.kind.as_str()));
    }
    keys
}

/// What a record counts, under its identity: chat messages on the chat topic, analytics events
/// elsewhere.
pub fn counted_for_record(record: &DecodedRecord, chat_topic: &str) -> Result<Counted, Error> {
    if record.id.topic == chat_topic {
        let m = record.parse::<ChatMessage>()?;
        Ok(Counted {
            id: format!("message#{}", m.message_id),
            keys: counters_for_message(&m),
        })
    } else {
        let e = record.parse::<AnalyticsEvent>()?;
        Ok(Counted {
            id: format!("event#{}", e.event_id),
            keys: counters_for_event(&e),
        })
    }
}

/// Counts every partition of the event; returns the partial-batch response.
pub async fn count_batch<S: AnalyticsStore, D: DeadLetters>(
    event: &KafkaEvent,
    chat_topic: &str,
    store: &S,
    dead_letters: &D,
) -> KafkaBatchResponse {
    let partitions = kafka::partitions(event);
    let failures = join_all(partitions.into_iter().map(|p| {
        let span = info_span!("partition", topic = %p.topic, partition = p.partition);
        count_partition(p, chat_topic, store, dead_letters).instrument(span)
    }))
    .await;
    KafkaBatchResponse {
        batch_item_failures: failures.into_iter().flatten().collect(),
    }
}

/// Records gathered for one atomic apply.
#[derive(Default)]
struct Chunk {
    /// Index (in the partition batch) of its first record.
    first: Option<usize>,
    records: Vec<Counted>,
    rows: BTreeSet<String>,
}

impl Chunk {
    fn items_with(&self, c: &Counted) -> usize {
        let new_rows = c.keys.iter().filter(|k| !self.rows.contains(&k.counter)).count();
        self.records.len() + 1 + self.rows.len() + new_rows
    }
}

async fn count_partition<S: AnalyticsStore, D: DeadLetters>(
    batch: PartitionBatch,
    chat_topic: &str,
    store: &S,
    dead_letters: &D,
) -> Vec<BatchItemFailure> {
    let ids = batch.ids();
    let mut chunk = Chunk::default();
    for (index, record) in batch.records.into_iter().enumerate() {
        let counted = match record {
            Ok(decoded) => match counted_for_record(&decoded, chat_topic) {
                Ok(c) => Some(c),
                Err(e) => match settle_failure(dead_letters, &RawRecord::from(&decoded), e).await {
                    Ok(()) => None,
                    Err(_) => return flush_then_fail(store, chunk, &ids, index).await,
                },
            },
            Err(bad) => match settle_failure(dead_letters, &bad.raw, Error::Invalid(bad.error)).await {
                Ok(()) => None,
                Err(_) => return flush_then_fail(store, chunk, &ids, index).await,
            },
        };
        let Some(counted) = counted else { continue };
        if !chunk.records.is_empty()
            && chunk.items_with(&counted) > MAX_ITEMS_PER_APPLY
            && let Err(failed_from) = apply(store, std::mem::take(&mut chunk)).await
        {
            return failures_from(&ids[failed_from..]);
        }
        chunk.first.get_or_insert(index);
        chunk.rows.extend(counted.keys.iter().map(|k| k.counter.clone()));
        chunk.records.push(counted);
    }
    match apply(store, chunk).await {
        Ok(()) => Vec::new(),
        Err(failed_from) => failures_from(&ids[failed_from..]),
    }
}

/// Applies what was gathered before the record at `index`, then reports `index` on as failed.
async fn flush_then_fail<S: AnalyticsStore>(
    store: &S,
    chunk: Chunk,
    ids: &[relaychat_schema::RecordId],
    index: usize,
) -> Vec<BatchItemFailure> {
    match apply(store, chunk).await {
        Ok(()) => failures_from(&ids[index..]),
        Err(failed_from) => failures_from(&ids[failed_from..]),
    }
}

/// Applies a chunk; on failure returns the index of its first record.
async fn apply<S: AnalyticsStore>(store: &S, chunk: Chunk) -> Result<(), usize> {
    let Some(first) = chunk.first else { return Ok(()) };
    match store.count_once(&chunk.records).await {
        Ok(new) => {
            if new < chunk.records.len() {
                debug!(
                    repeats = chunk.records.len() - new,
                    "records counted before were skipped"
                );
            }
            Ok(())
        }
        Err(e) => {
            warn!(error = %e.chain(), "could not apply counters; will retry");
            Err(first)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Memory, sample_message};
    use relaychat_schema::RecordId;
    use relaychat_schema::events::TopicEvent;
    use relaychat_schema::kafka::encode_record;

    /// Every sample message sent on one fixed day, so no test depends on the clock (or midnight).
    const NOON_DAY: &str = "2026-01-02";

    fn noon(mut m: ChatMessage) -> ChatMessage {
        m.sent_at = chrono::DateTime::parse_from_rfc3339("2026-01-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        m
    }

    fn event_of(values: &[Vec<u8>], first_offset: i64) -> KafkaEvent {
        let recs: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let id = RecordId {
                    topic: "chat-messages".into(),
                    partition: 0,
                    offset: first_offset + i as i64,
                };
                encode_record(&id, Some(b"c1"), v, &[], 0)
            })
            .collect();
        serde_json::from_value(serde_json::json!({"eventSource": "aws:kafka", "records": {"chat-messages-0": recs}}))
            .unwrap()
    }

    #[tokio::test]
    async fn counts_once_even_when_the_batch_is_replayed_or_overlaps() {
        // GIVEN three messages in c1, two from alice, one from bob, and one malformed record
        let mem = Memory::default();
        let m1 = noon(sample_message("c1", "alice", &["bob"]));
        let m2 = noon(sample_message("c1", "bob", &["alice"]));
        let m3 = noon(sample_message("c1", "alice", &["bob"]));
        let values = vec![m1.to_json(), b"{not json".to_vec(), m2.to_json(), m3.to_json()];
        let d = day(m1.sent_at);
        // WHEN the first two records are counted, then the whole batch, then the whole batch again
        let first = count_batch(&event_of(&values[..2], 0), "chat-messages", &mem, &mem).await;
        let second = count_batch(&event_of(&values, 0), "chat-messages", &mem, &mem).await;
        let third = count_batch(&event_of(&values, 0), "chat-messages", &mem, &mem).await;
        // THEN every message is counted exactly once and the malformed one is dead-lettered once
        assert!(first.batch_item_failures.is_empty() && second.batch_item_failures.is_empty());
        assert!(third.batch_item_failures.is_empty());
        assert_eq!(mem.counter(&format!("conv#c1#{d}"), "messages"), 3);
        assert_eq!(mem.counter(&format!("user#alice#{d}"), "messagesSent"), 2);
        assert_eq!(mem.counter(&format!("user#bob#{d}"), "messagesSent"), 1);
        assert_eq!(mem.dead_letters().len(), 3, "dead-lettered on each read: at least once");
    }

    #[tokio::test]
    async fn a_recreated_topic_is_counted_from_its_first_record() {
        // GIVEN three messages counted at offsets 0..3
        let mem = Memory::default();
        let old: Vec<Vec<u8>> = (0..3)
            .map(|_| noon(sample_message("c1", "alice", &["bob"])).to_json())
            .collect();
        count_batch(&event_of(&old, 0), "chat-messages", &mem, &mem).await;
        // WHEN the topic is recreated (the local broker restarts) and new messages come at 0..2
        let new: Vec<Vec<u8>> = (0..2)
            .map(|_| noon(sample_message("c1", "alice", &["bob"])).to_json())
            .collect();
        let resp = count_batch(&event_of(&new, 0), "chat-messages", &mem, &mem).await;
        // THEN they are counted: offsets are not identities
        assert!(resp.batch_item_failures.is_empty());
        let d = NOON_DAY;
        assert_eq!(mem.counter(&format!("conv#c1#{d}"), "messages"), 5);
    }

    #[tokio::test]
    async fn a_failing_store_reports_the_partition_for_retry() {
        let mem = Memory::default();
        mem.fail_counters(true);
        let values = vec![noon(sample_message("c1", "alice", &["bob"])).to_json()];
        let resp = count_batch(&event_of(&values, 5), "chat-messages", &mem, &mem).await;
        assert_eq!(resp.batch_item_failures.len(), 1);
        assert_eq!(resp.batch_item_failures[0].item_identifier.offset, 5);
    }

    #[tokio::test]
    async fn many_conversations_are_split_into_several_atomic_applies() {
        let mem = Memory::default();
        let values: Vec<Vec<u8>> = (0..120)
            .map(|i| noon(sample_message(&format!("c{i}"), "alice", &["bob"])).to_json())
            .collect();
        let resp = count_batch(&event_of(&values, 0), "chat-messages", &mem, &mem).await;
        assert!(resp.batch_item_failures.is_empty());
        let d = NOON_DAY;
        assert_eq!(mem.counter(&format!("user#alice#{d}"), "messagesSent"), 120);
        assert!(mem.largest_apply() <= MAX_ITEMS_PER_APPLY);
    }
}
