//! Arbitrary bytes as one record's VALUE inside a well-formed Lambda Kafka event, so the fuzzer
//! spends its time in the base64, JSON and field-validation paths of `relaychat_schema` rather
//! than in the outer event parser.
//!
//! Input: `[control byte][payload...]`. The control byte picks
//!   bits 0-2  the topic (the five relaychat topics, a dashed `a-1-b`, an empty one, a non-ASCII one);
//!   bit 3     a key (the first 16 payload bytes);
//!   bit 4     RAW: the payload (lossy UTF-8) is put as the base64 text itself, unencoded;
//!   bit 5     headers (two, from the payload, one of them repeated);
//!   bit 6     no value at all (`"value": null`), unless RAW;
//!   bit 7     extreme coordinates: partition outside i32 (so the group key's wins), offset i64::MIN/MAX.
//! Otherwise the payload is base64-encoded as Lambda would (kafka::msk_event).
//!
//! Beyond "no panic": the decoded record has exactly the id `topic-partition@offset` and the key,
//! value and header bytes that went in; RAW text decodes iff it is canonical base64 (and then
//! re-encodes to the same text), else the record is kept undecoded with the text as its value and
//! an error naming it; plus everything kafka_common::check_event checks (every event type parsed).
//!
//! Seeds: fuzz/seeds/kafka_value (control byte 0x00 + each topic value in events/*.json, and variants).

#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use relaychat_schema::SchemaError;
use relaychat_schema::kafka::{self, RecordId};

#[path = "kafka_common.rs"]
mod kafka_common;

const TOPICS: [&str; 8] = [
    "chat-messages",
    "message-status-events",
    "typing-events",
    "notifications",
    "analytics-events",
    "a-1-b",
    "",
    "тема-чат",
];

fuzz_target!(init: kafka_common::install_panic_filter(), |data: &[u8]| {
    let Some((&control, payload)) = data.split_first() else {
        return;
    };
    let topic = TOPICS[usize::from(control & 0b111)];
    let with_key = control & 0b1000 != 0;
    let raw = control & 0b1_0000 != 0;
    let with_headers = control & 0b10_0000 != 0;
    let no_value = control & 0b100_0000 != 0 && !raw;
    let extreme = control & 0b1000_0000 != 0;

    let partition: i32 = if extreme { 2_147_483_647 } else { i32::from(control & 0b11) };
    let offset: i64 = match (extreme, payload.len() % 2) {
        (true, 0) => i64::MAX,
        (true, _) => i64::MIN,
        (false, _) => 1_000 + payload.len() as i64,
    };
    let id = RecordId {
        topic: topic.to_owned(),
        partition,
        offset,
    };
    let key = with_key.then(|| &payload[..payload.len().min(16)]);
    let headers: Vec<(String, Vec<u8>)> = if with_headers {
        let h = payload[..payload.len().min(8)].to_vec();
        vec![
            ("traceparent".to_owned(), h.clone()),
            (String::from_utf8_lossy(&h).into_owned(), payload.iter().rev().take(4).copied().collect()),
            ("traceparent".to_owned(), b"second".to_vec()),
        ]
    } else {
        Vec::new()
    };

    // The record as the local runtime builds it (kafka::msk_event_json), then bent as the control bits say.
    let mut built = kafka::DecodedRecord::new(id.clone(), key, payload);
    built.headers = headers.clone();
    let mut record = kafka::msk_event_json([&built], &kafka::EventSource::default())["records"][id.topic_partition()][0].take();
    record["timestamp"] = serde_json::json!(1_764_064_800_123_i64);
    let text = String::from_utf8_lossy(payload).into_owned();
    if raw {
        record["value"] = serde_json::Value::String(text.clone());
    } else if no_value {
        record["value"] = serde_json::Value::Null;
    }
    let mut group_key = id.topic_partition();
    if extreme {
        // The record's own partition does not fit an i32: the group key's partition must win.
        record["partition"] = serde_json::json!(i64::MAX);
        group_key = format!("{topic}-{partition}");
    }
    let event = serde_json::json!({
        "eventSource": "aws:kafka",
        "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/relaychat/6c3f1a52-7f1e-4d5c-9a3e-2b1c0d9e8f7a-2",
        "bootstrapServers": "b-1.relaychat.abc123.c2.kafka.us-east-1.amazonaws.com:9098",
        "records": { group_key: [record] },
    });
    let bytes = serde_json::to_vec(&event).expect("a json! value serialises");
    let Some(decoded) = kafka_common::check_bytes(&bytes) else {
        panic!("a well-formed event did not deserialise")
    };

    let mut batches = kafka_common::deserialize_event(&bytes).expect("read once already").partitions;
    assert_eq!(batches.len(), 1);
    let batch = batches.remove(0);
    assert_eq!((batch.topic.as_str(), batch.partition), (topic, partition));
    assert_eq!(batch.records.len(), 1);
    let record = batch.records.into_iter().next().expect("one record");
    let expected_value: Option<Vec<u8>> = if raw {
        STANDARD.decode(&text).ok()
    } else if no_value {
        None
    } else {
        Some(payload.to_vec())
    };
    match (record, expected_value) {
        (Ok(d), Some(value)) => {
            assert_eq!(d.id, id);
            assert_eq!(d.id.to_string(), format!("{topic}-{partition}@{offset}"));
            assert_eq!(d.value, value);
            if raw {
                assert_eq!(STANDARD.encode(&d.value), text, "accepted base64 is canonical");
            }
            assert_eq!(d.key.as_deref(), key);
            assert_eq!(d.headers, headers);
            assert_eq!(d.timestamp.timestamp_millis(), 1_764_064_800_123);
            assert_eq!(decoded.len(), 1);
        }
        (Err(bad), None) => {
            assert_eq!(bad.raw.id, id);
            assert_eq!(bad.raw.headers, headers);
            assert_eq!(bad.raw.key.as_deref(), key);
            if raw {
                assert!(
                    matches!(bad.error, SchemaError::InvalidBase64 { field: "value", .. }),
                    "{:?}",
                    bad.error
                );
                assert_eq!(bad.raw.value, text.as_bytes(), "undecodable text is kept as sent");
            } else {
                assert!(matches!(bad.error, SchemaError::MissingValue { .. }), "{:?}", bad.error);
                assert!(bad.raw.value.is_empty());
            }
            assert!(decoded.is_empty());
        }
        (Ok(d), None) => panic!("record decoded though its value should not: {d:?}"),
        (Err(bad), Some(_)) => panic!("record did not decode: {}", bad.error),
    }
});
