//! analytics: counters per day per conversation and per user. A partition's records are summed
//! into a few increments and applied together with a per-partition watermark (the last offset
//! counted), in one atomic write, so a replayed record is never counted twice.

use std::collections::BTreeMap;

use aws_lambda_events::event::kafka::KafkaEvent;
use chrono::{DateTime, Utc};
use futures::future::join_all;
use relaychat_schema::kafka::{self, PartitionBatch, RawRecord};
use relaychat_schema::{AnalyticsEvent, BatchItemFailure, ChatMessage, DecodedRecord, KafkaBatchResponse, RecordId};
use tracing::{Instrument, debug, info_span};

use crate::Error;
use crate::batch::{failures_from, settle_failure};
use crate::ports::{AnalyticsStore, CounterKey, DeadLetters};

/// Most distinct counters in one atomic apply (DynamoDB transactions take 100 items; one is the
/// watermark).
pub const MAX_COUNTERS_PER_APPLY: usize = 90;

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

/// Which counters a record adds to: chat messages on the chat topic, analytics events elsewhere.
pub fn counters_for_record(record: &DecodedRecord, chat_topic: &str) -> Result<Vec<CounterKey>, Error> {
    if record.id.topic == chat_topic {
        Ok(counters_for_message(&record.parse::<ChatMessage>()?))
    } else {
        Ok(counters_for_event(&record.parse::<AnalyticsEvent>()?))
    }
}

/// Counts every partition of the event; returns the partial-batch response.
pub async fn count_batch<S: AnalyticsStore, D: DeadLetters>(
    event: &KafkaEvent,
    consumer: &str,
    chat_topic: &str,
    store: &S,
    dead_letters: &D,
) -> KafkaBatchResponse {
    let partitions = kafka::partitions(event);
    let failures = join_all(partitions.into_iter().map(|p| {
        let span = info_span!("partition", topic = %p.topic, partition = p.partition);
        count_partition(p, consumer, chat_topic, store, dead_letters).instrument(span)
    }))
    .await;
    KafkaBatchResponse {
        batch_item_failures: failures.into_iter().flatten().collect(),
    }
}

/// Increments summed over a run of records, ready to apply.
struct Chunk {
    first: usize,
    last_offset: i64,
    sums: BTreeMap<CounterKey, i64>,
}

async fn count_partition<S: AnalyticsStore, D: DeadLetters>(
    batch: PartitionBatch,
    consumer: &str,
    chat_topic: &str,
    store: &S,
    dead_letters: &D,
) -> Vec<BatchItemFailure> {
    let ids = batch.ids();
    let stream = format!("{consumer}/{}", batch.topic_partition());
    let mut watermark = match store.watermark(&stream).await {
        Ok(w) => w,
        Err(_) => return failures_from(&ids),
    };
    let mut chunk: Option<Chunk> = None;
    for (index, record) in batch.records.into_iter().enumerate() {
        let id = &ids[index];
        if watermark.is_some_and(|w| id.offset <= w) {
            debug!(record = %id, "already counted");
            continue;
        }
        let counted = match record {
            Ok(decoded) => match counters_for_record(&decoded, chat_topic) {
                Ok(keys) => Ok(keys),
                Err(e) => settle_failure(dead_letters, &RawRecord::from(&decoded), e)
                    .await
                    .map(|()| Vec::new()),
            },
            Err(bad) => settle_failure(dead_letters, &bad.raw, Error::Invalid(bad.error))
                .await
                .map(|()| Vec::new()),
        };
        let keys = match counted {
            Ok(keys) => keys,
            Err(_) => return flush_then_fail(store, &stream, &mut watermark, chunk, &ids, index).await,
        };
        let overflows = chunk.as_ref().is_some_and(|c| {
            c.sums.len() + keys.iter().filter(|k| !c.sums.contains_key(k)).count() > MAX_COUNTERS_PER_APPLY
        });
        if overflows && let Err(failed_from) = apply(store, &stream, &mut watermark, chunk.take()).await {
            return failures_from(&ids[failed_from..]);
        }
        // Dead-lettered records add no keys but still move the watermark: a replay skips them too.
        let current = chunk.get_or_insert_with(|| Chunk {
            first: index,
            last_offset: id.offset,
            sums: BTreeMap::new(),
        });
        current.last_offset = id.offset;
        for k in keys {
            *current.sums.entry(k).or_default() += 1;
        }
    }
    match apply(store, &stream, &mut watermark, chunk).await {
        Ok(()) => Vec::new(),
        Err(failed_from) => failures_from(&ids[failed_from..]),
    }
}

/// Applies what was counted before the record at `index`, then reports `index` on as failed.
async fn flush_then_fail<S: AnalyticsStore>(
    store: &S,
    stream: &str,
    watermark: &mut Option<i64>,
    chunk: Option<Chunk>,
    ids: &[RecordId],
    index: usize,
) -> Vec<BatchItemFailure> {
    match apply(store, stream, watermark, chunk).await {
        Ok(()) => failures_from(&ids[index..]),
        Err(failed_from) => failures_from(&ids[failed_from..]),
    }
}

/// Applies a chunk; on failure returns the index of its first record.
async fn apply<S: AnalyticsStore>(
    store: &S,
    stream: &str,
    watermark: &mut Option<i64>,
    chunk: Option<Chunk>,
) -> Result<(), usize> {
    let Some(chunk) = chunk else { return Ok(()) };
    let increments: Vec<(CounterKey, i64)> = chunk.sums.into_iter().collect();
    match store.apply(stream, *watermark, chunk.last_offset, &increments).await {
        Ok(true) => {
            *watermark = Some(chunk.last_offset);
            Ok(())
        }
        // Another invocation moved the watermark: let Lambda retry, the next read sees it.
        Ok(false) => Err(chunk.first),
        Err(e) => {
            tracing::warn!(%stream, error = %e.chain(), "could not apply counters; will retry");
            Err(chunk.first)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Memory, sample_message};
    use relaychat_schema::events::TopicEvent;
    use relaychat_schema::kafka::encode_record;

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
        let m1 = sample_message("c1", "alice", &["bob"]);
        let m2 = sample_message("c1", "bob", &["alice"]);
        let m3 = sample_message("c1", "alice", &["bob"]);
        let values = vec![m1.to_json(), b"{not json".to_vec(), m2.to_json(), m3.to_json()];
        let d = day(m1.sent_at);
        // WHEN the first two records are counted, then the whole batch, then the whole batch again
        let first = count_batch(&event_of(&values[..2], 0), "analytics", "chat-messages", &mem, &mem).await;
        let second = count_batch(&event_of(&values, 0), "analytics", "chat-messages", &mem, &mem).await;
        let third = count_batch(&event_of(&values, 0), "analytics", "chat-messages", &mem, &mem).await;
        // THEN every message is counted exactly once and the malformed one is dead-lettered once
        assert!(first.batch_item_failures.is_empty() && second.batch_item_failures.is_empty());
        assert!(third.batch_item_failures.is_empty());
        assert_eq!(mem.counter(&format!("conv#c1#{d}"), "messages"), 3);
        assert_eq!(mem.counter(&format!("user#alice#{d}"), "messagesSent"), 2);
        assert_eq!(mem.counter(&format!("user#bob#{d}"), "messagesSent"), 1);
        assert_eq!(mem.dead_letters().len(), 1);
    }

    #[tokio::test]
    async fn a_failing_store_reports_the_partition_for_retry() {
        let mem = Memory::default();
        mem.fail_counters(true);
        let values = vec![sample_message("c1", "alice", &["bob"]).to_json()];
        let resp = count_batch(&event_of(&values, 5), "analytics", "chat-messages", &mem, &mem).await;
        assert_eq!(resp.batch_item_failures.len(), 1);
        assert_eq!(resp.batch_item_failures[0].item_identifier.offset, 5);
    }

    #[tokio::test]
    async fn many_conversations_are_split_into_several_atomic_applies() {
        let mem = Memory::default();
        let values: Vec<Vec<u8>> = (0..120)
            .map(|i| sample_message(&format!("c{i}"), "alice", &["bob"]).to_json())
            .collect();
        let resp = count_batch(&event_of(&values, 0), "analytics", "chat-messages", &mem, &mem).await;
        assert!(resp.batch_item_failures.is_empty());
        let d = day(chrono::Utc::now());
        assert_eq!(mem.counter(&format!("user#alice#{d}"), "messagesSent"), 120);
        assert!(mem.largest_apply() <= MAX_COUNTERS_PER_APPLY);
    }
}
