//! Decoding of the events Lambda hands a Kafka-triggered function (MSK `aws:kafka` and
//! `SelfManagedKafka` share one shape), and the partial-batch response it returns.

use std::fmt;

mod wire;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::SchemaError;
use crate::events::TopicEvent;

/// Where a record lives: `topic-partition@offset`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordId {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl RecordId {
    /// The `topic-partition` string Lambda uses for record groups and batch item failures.
    pub fn topic_partition(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}@{}", self.topic, self.partition, self.offset)
    }
}

/// A record with its key, value and headers decoded to bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRecord {
    pub id: RecordId,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp: DateTime<Utc>,
}

impl DecodedRecord {
    /// Parses the value as a topic event; the error names this record.
    pub fn parse<E: TopicEvent>(&self) -> Result<E, SchemaError> {
        E::from_json(&self.value).map_err(|e| SchemaError::InvalidPayload {
            record: self.id.clone(),
            source: Box::new(e),
        })
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }
}

/// A record as Lambda delivered it, kept whole so a dead-letter copy can carry the original bytes
/// even when decoding failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub id: RecordId,
    /// The key: decoded when it was valid base64, else the text Lambda sent.
    pub key: Option<Vec<u8>>,
    /// The value: decoded when it was valid base64, else the text Lambda sent.
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A record that could not be decoded, kept whole with the reason.
#[derive(Debug)]
pub struct Undecodable {
    pub raw: RawRecord,
    pub error: SchemaError,
}

/// One record of a batch: decoded, or the reason it could not be (boxed: the rare case).
pub type BatchRecord = Result<DecodedRecord, Box<Undecodable>>;

/// The records of one `topic-partition`, in offset order, each decoded or with the reason it was not.
#[derive(Debug)]
pub struct PartitionBatch {
    pub topic: String,
    pub partition: i32,
    pub records: Vec<BatchRecord>,
}

/// Where a record of a batch came from, decoded or not.
pub fn id_of(record: &BatchRecord) -> &RecordId {
    match record {
        Ok(d) => &d.id,
        Err(bad) => &bad.raw.id,
    }
}

impl PartitionBatch {
    pub fn topic_partition(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// The ids of the records, decoded or not, in order.
    pub fn ids(&self) -> Vec<RecordId> {
        self.records.iter().map(|r| id_of(r).clone()).collect()
    }
}

/// The event Lambda hands a Kafka-triggered function (MSK `aws:kafka` and `SelfManagedKafka` share
/// one shape), read straight into its partitions (see `wire`): sorted by topic and partition, each
/// one's records in offset order. Never fails for one record: a record that cannot be decoded is
/// kept in its place with its reason.
#[derive(Debug, Default)]
pub struct MskEvent {
    pub partitions: Vec<PartitionBatch>,
}

impl MskEvent {
    /// The event from the invocation's bytes (what the Lambda runtime does with its body).
    pub fn from_slice(json: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(json)
    }

    /// The event from its JSON, read through its bytes as Lambda hands it over (header lists are
    /// read as raw JSON, which a `serde_json::Value` cannot lend).
    pub fn from_json(json: &serde_json::Value) -> Result<Self, serde_json::Error> {
        Self::from_slice(&serde_json::to_vec(json)?)
    }

    /// How many records the event holds, decoded or not.
    pub fn record_count(&self) -> usize {
        self.partitions.iter().map(|p| p.records.len()).sum()
    }
}

impl From<&DecodedRecord> for RawRecord {
    fn from(r: &DecodedRecord) -> Self {
        Self {
            id: r.id.clone(),
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
        }
    }
}

/// The partial-batch response of a Kafka-triggered function (not yet in `aws_lambda_events`):
/// `{"batchItemFailures":[{"itemIdentifier":{"partition":"topic-0","offset":N}}]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBatchResponse {
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    pub item_identifier: KafkaItemIdentifier,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaItemIdentifier {
    /// `topic-partition`.
    pub partition: String,
    pub offset: i64,
}

impl BatchItemFailure {
    pub fn new(id: &RecordId) -> Self {
        Self {
            item_identifier: KafkaItemIdentifier {
                partition: id.topic_partition(),
                offset: id.offset,
            },
        }
    }
}

impl DecodedRecord {
    /// A record with no headers, stamped at the epoch (tests and tools set what they need).
    pub fn new(id: RecordId, key: Option<&[u8]>, value: &[u8]) -> Self {
        Self {
            id,
            key: key.map(<[u8]>::to_vec),
            value: value.to_vec(),
            headers: Vec::new(),
            timestamp: DateTime::UNIX_EPOCH,
        }
    }
}

/// Where an MSK event says its records came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSource {
    pub arn: String,
    pub bootstrap_servers: String,
}

impl Default for EventSource {
    fn default() -> Self {
        Self {
            arn: "arn:aws:kafka:us-east-1:000000000000:cluster/relaychat-local/local".into(),
            bootstrap_servers: "127.0.0.1:9092".into(),
        }
    }
}

/// The MSK-shaped event Lambda delivers for these records, read back from its JSON bytes as a
/// function reads its invocation: base64 keys and values, headers as signed bytes, grouped by
/// topic-partition. The one builder of MSK events: the local runtime's event-source mappings, the
/// tests and the fuzz targets all use it.
pub fn msk_event<'a>(
    records: impl IntoIterator<Item = &'a DecodedRecord>,
    source: &EventSource,
) -> Result<MskEvent, serde_json::Error> {
    MskEvent::from_json(&msk_event_json(records, source))
}

/// The same event as the JSON Lambda sends (numbers where Lambda sends numbers).
pub fn msk_event_json<'a>(
    records: impl IntoIterator<Item = &'a DecodedRecord>,
    source: &EventSource,
) -> serde_json::Value {
    let mut groups: std::collections::BTreeMap<String, Vec<serde_json::Value>> = std::collections::BTreeMap::new();
    for r in records {
        groups.entry(r.id.topic_partition()).or_default().push(encode_record(r));
    }
    serde_json::json!({
        "eventSource": "aws:kafka",
        "eventSourceArn": source.arn,
        "bootstrapServers": source.bootstrap_servers,
        "records": groups,
    })
}

fn encode_record(r: &DecodedRecord) -> serde_json::Value {
    let headers: Vec<serde_json::Value> = r
        .headers
        .iter()
        .map(|(k, v)| {
            let signed: Vec<i8> = v.iter().map(|b| *b as i8).collect();
            serde_json::json!({ k: signed })
        })
        .collect();
    serde_json::json!({
        "topic": r.id.topic,
        "partition": r.id.partition,
        "offset": r.id.offset,
        "timestamp": r.timestamp.timestamp_millis(),
        "timestampType": "CREATE_TIME",
        "key": r.key.as_deref().map(|k| STANDARD.encode(k)),
        "value": STANDARD.encode(&r.value),
        "headers": headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: serde_json::Value) -> MskEvent {
        MskEvent::from_json(&json).unwrap()
    }

    #[test]
    fn decodes_the_aws_sample_msk_event() {
        let e = event(serde_json::json!({
            "eventSource": "aws:kafka",
            "eventSourceArn": "arn:aws:kafka:us-west-2:012345678901:cluster/ExampleMSKCluster/e9f754c6-d29a-4430-a7db-958a19fd2c54-4",
            "bootstrapServers": "b-2.demo-cluster-1.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092",
            "records": {"AWSKafkaTopic-0": [{
                "topic": "AWSKafkaTopic", "partition": 0, "offset": 0, "timestamp": 1595035749700_i64,
                "timestampType": "CREATE_TIME",
                "key": "OGQ1NTk2YjQtMTgxMy00MjM4LWIyNGItNmRhZDhlM2QxYzBj",
                "value": "OGQ1NTk2YjQtMTgxMy00MjM4LWIyNGItNmRhZDhlM2QxYzBj",
                "headers": [{"headerKey": [104, 101, 97, 100, 101, 114, 86, 97, 108, 117, 101]}]
            }]}
        }));
        let parts = e.partitions;
        assert_eq!(parts.len(), 1);
        let r = parts[0].records[0].as_ref().unwrap();
        assert_eq!(r.id.to_string(), "AWSKafkaTopic-0@0");
        assert_eq!(r.key.as_deref(), Some(&b"8d5596b4-1813-4238-b24b-6dad8e3d1c0c"[..]));
        assert_eq!(r.value, b"8d5596b4-1813-4238-b24b-6dad8e3d1c0c");
        assert_eq!(r.header("headerKey"), Some(&b"headerValue"[..]));
    }

    #[test]
    fn decodes_self_managed_negative_header_bytes_and_missing_key() {
        // Self-managed Kafka events carry no eventSourceArn but bootstrapServers; topic names may hold dashes.
        let e = event(serde_json::json!({
            "eventSource": "SelfManagedKafka",
            "bootstrapServers": "b-1.example:9092",
            "records": {"chat-messages-2": [
                {"topic": "chat-messages", "partition": 2, "offset": 8, "timestamp": 1764064800000_i64,
                 "timestampType": "CREATE_TIME", "value": "e30=", "headers": [{"trace": [-61, -87, 0, 127, -128]}]},
                {"topic": "chat-messages", "partition": 2, "offset": 7, "timestamp": 1764064800000_i64,
                 "timestampType": "CREATE_TIME", "key": "YzE=", "value": "e30=", "headers": []}
            ]}
        }));
        let parts = e.partitions;
        assert_eq!(parts[0].topic_partition(), "chat-messages-2");
        let offsets: Vec<i64> = parts[0].records.iter().map(|r| r.as_ref().unwrap().id.offset).collect();
        assert_eq!(offsets, vec![7, 8], "records come back in offset order");
        let later = parts[0].records[1].as_ref().unwrap();
        assert_eq!(later.key, None);
        assert_eq!(later.header("trace"), Some(&[0xC3u8, 0xA9, 0x00, 0x7F, 0x80][..]));
    }

    #[test]
    fn bad_base64_names_the_record_and_field_and_keeps_the_bytes() {
        let e = event(serde_json::json!({
            "eventSource": "aws:kafka",
            "records": {"t-1": [{"topic": "t", "partition": 1, "offset": 42, "timestamp": 0,
                                 "value": "%%%not base64", "headers": []}]}
        }));
        let parts = e.partitions;
        let bad = parts[0].records[0].as_ref().unwrap_err();
        let (raw, err) = (&bad.raw, &bad.error);
        assert_eq!(err.to_string(), "record t-1@42: field `value` is not valid base64");
        assert_eq!(raw.value, b"%%%not base64");
    }

    #[test]
    fn reads_what_a_general_event_type_would_choke_on() {
        // A fractional or quoted timestamp, an escaped slash in base64, null headers, and a group
        // key given twice (the last list wins, as in a JSON object).
        let json = br#"{"eventSource":"aws:kafka","records":{
            "t-0":[{"offset":1,"timestamp":5,"value":"AA=="}],
            "t-0":[{"topic":"t","partition":0,"offset":2,"timestamp":1764064800000.75,"value":"\/w==","headers":null},
                   {"topic":"t","partition":0,"offset":3,"timestamp":"1764064800001","key":null,"value":"e30="}]}}"#;
        let e = MskEvent::from_slice(json).unwrap();
        assert_eq!(e.partitions.len(), 1);
        assert_eq!(e.record_count(), 2);
        let first = e.partitions[0].records[0].as_ref().unwrap();
        assert_eq!((first.id.offset, first.value.as_slice()), (2, &[0xFFu8][..]));
        assert_eq!(first.timestamp.timestamp_millis(), 1_764_064_800_000);
        assert!(first.headers.is_empty());
        let second = e.partitions[0].records[1].as_ref().unwrap();
        assert_eq!(second.timestamp.timestamp_millis(), 1_764_064_800_001);
    }

    #[test]
    fn a_timestamp_out_of_range_is_that_records_error_alone() {
        let json = br#"{"records":{"t-0":[
            {"offset":1,"timestamp":9223372036854775807,"value":"eA==","headers":[{"h":[1]}]},
            {"offset":2,"timestamp":0,"value":"eQ=="}]}}"#;
        let e = MskEvent::from_slice(json).unwrap();
        let bad = e.partitions[0].records[0].as_ref().unwrap_err();
        assert_eq!(
            bad.error.to_string(),
            "record t-0@1: timestamp 9223372036854775807 ms is out of range"
        );
        assert_eq!((bad.raw.value.as_slice(), bad.raw.headers.len()), (&b"x"[..], 1));
        assert_eq!(e.partitions[0].records[1].as_ref().unwrap().value, b"y");
    }

    #[test]
    fn an_event_without_offsets_or_timestamps_is_refused_whole() {
        for json in [
            &br#"{"records":{"t-0":[{"timestamp":0,"value":"eA=="}]}}"#[..],
            br#"{"records":{"t-0":[{"offset":0,"value":"eA=="}]}}"#,
            br#"{"records":{"t-0":[{"offset":0,"timestamp":0,"value":"eA==","headers":[{"h":[128]}]}]}}"#,
        ] {
            assert!(MskEvent::from_slice(json).is_err(), "{}", String::from_utf8_lossy(json));
        }
        assert_eq!(MskEvent::from_slice(br#"{"records":null}"#).unwrap().record_count(), 0);
    }

    #[test]
    fn msk_event_then_partitions_round_trips() {
        let id = |partition, offset| RecordId {
            topic: "typing-events".into(),
            partition,
            offset,
        };
        let mut first = DecodedRecord::new(id(1, 3), Some(b"k"), b"{\"a\":1}");
        first.headers = vec![("h".to_owned(), vec![0xFFu8, 0x01])];
        first.timestamp = DateTime::from_timestamp_millis(1_764_064_800_000).unwrap();
        let records = vec![
            first,
            DecodedRecord::new(id(0, 9), None, b"x"),
            DecodedRecord::new(id(1, 4), None, b"y"),
        ];
        let e = msk_event(&records, &EventSource::default()).unwrap();
        let mut back: Vec<DecodedRecord> = e
            .partitions
            .into_iter()
            .flat_map(|p| p.records)
            .map(Result::unwrap)
            .collect();
        back.sort_by_key(|r| (r.id.partition, r.id.offset));
        let mut sent = records.clone();
        sent.sort_by_key(|r| (r.id.partition, r.id.offset));
        assert_eq!(back, sent);
    }

    #[test]
    fn batch_response_has_the_lambda_shape() {
        let id = RecordId {
            topic: "chat-messages".into(),
            partition: 0,
            offset: 5,
        };
        let resp = KafkaBatchResponse {
            batch_item_failures: vec![BatchItemFailure::new(&id)],
        };
        assert_eq!(
            serde_json::to_value(&resp).unwrap(),
            serde_json::json!({"batchItemFailures":[{"itemIdentifier":{"partition":"chat-messages-0","offset":5}}]})
        );
    }
}
