//! The batch driver every Kafka-triggered function runs on: partitions concurrently, records of a
//! partition in order, each in its own span. A permanent failure (malformed record, rejected
//! write) goes to the consumer's dead-letter topic with its reason and the partition moves on; a
//! retryable one stops its partition and is reported, with every later record of that partition,
//! as a batch item failure, so Lambda retries from there and order holds.

use std::future::Future;

use aws_lambda_events::event::kafka::KafkaEvent;
use futures::future::join_all;
use relaychat_schema::kafka::{self, PartitionBatch, RawRecord};
use relaychat_schema::{BatchItemFailure, DecodedRecord, KafkaBatchResponse, RecordId};
use tracing::{Instrument, error, info_span, warn};

use crate::Error;
use crate::ports::DeadLetters;

/// Handles one decoded record.
pub trait RecordHandler: Sync {
    fn handle(&self, record: &DecodedRecord) -> impl Future<Output = Result<(), Error>> + Send;
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
    for (index, record) in batch.records.into_iter().enumerate() {
        let span = info_span!("record", topic = %batch.topic, partition = batch.partition, offset = ids[index].offset);
        let handled = async {
            match record {
                Ok(decoded) => match handler.handle(&decoded).await {
                    Ok(()) => Ok(()),
                    Err(e) => settle_failure(dead_letters, &RawRecord::from(&decoded), e).await,
                },
                Err(bad) => settle_failure(dead_letters, &bad.raw, Error::Invalid(bad.error)).await,
            }
        }
        .instrument(span)
        .await;
        if handled.is_err() {
            return failures_from(&ids[index..]);
        }
    }
    Vec::new()
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
pub fn failures_from(ids: &[RecordId]) -> Vec<BatchItemFailure> {
    ids.iter().map(BatchItemFailure::new).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Memory;
    use relaychat_schema::kafka::encode_record;
    use std::sync::Mutex;

    /// Fails records whose value says so; remembers the order it saw the others in.
    #[derive(Default)]
    struct Script {
        seen: Mutex<Vec<String>>,
    }

    impl RecordHandler for Script {
        async fn handle(&self, record: &DecodedRecord) -> Result<(), Error> {
            match record.value.as_slice() {
                b"throttle" => Err(Error::unavailable("write", "throttled")),
                b"reject" => Err(Error::rejected("write", "validation")),
                _ => {
                    self.seen.lock().unwrap().push(record.id.to_string());
                    Ok(())
                }
            }
        }
    }

    fn event(parts: &[(&str, i32, &[&[u8]])]) -> KafkaEvent {
        let mut records = serde_json::Map::new();
        for (topic, partition, values) in parts {
            let recs: Vec<_> = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let id = RecordId {
                        topic: topic.to_string(),
                        partition: *partition,
                        offset: 10 + i as i64,
                    };
                    encode_record(&id, Some(b"k"), v, &[], 0)
                })
                .collect();
            records.insert(format!("{topic}-{partition}"), serde_json::Value::Array(recs));
        }
        serde_json::from_value(serde_json::json!({"eventSource": "aws:kafka", "records": records})).unwrap()
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
