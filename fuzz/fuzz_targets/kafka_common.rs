//! Shared by the `kafka_event` and `kafka_value` targets (included with `#[path]`, not a target):
//! read a Lambda Kafka event with `relaychat_schema::MskEvent` (what `serve_kafka` does), check it
//! against `aws_lambda_events`' general reading of the same bytes, parse every record as every
//! topic event type, and check what must hold whatever the bytes were.

#![allow(dead_code)]

use std::panic;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use aws_lambda_events::event::kafka::KafkaEvent;
use relaychat_schema::events::{SCHEMA_VERSION, TopicEvent};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use relaychat_schema::kafka::{self, BatchItemFailure, KafkaBatchResponse, MskEvent, RawRecord, RecordId};
use relaychat_schema::{
    AnalyticsEvent, ChatMessage, DecodedRecord, MessageStatusUpdate, Notification, SchemaError, Title, TypingIndicator,
};

// ---------------------------------------------------------------------------------------------
// The reference reading panics on some inputs: aws_lambda_events 1.2.1, src/encodings/time.rs,
// `deserialize_milliseconds` does `assert_eq!(frac, 0)`, so a record `timestamp` with a fractional
// part (`1.5`, `"1.5"`, `15e-1`) panics inside `serde_json::from_slice::<KafkaEvent>`. relaychat no
// longer reads events with it (MskEvent cuts the fraction); the targets compare against it only
// where it answers. Any other panic still crashes. RELAYCHAT_FUZZ_STRICT_UPSTREAM=1 makes that
// one crash too (see docs/fuzzing.md).
// ---------------------------------------------------------------------------------------------

static TOLERATING: AtomicBool = AtomicBool::new(false);
static TOLERATED: AtomicU64 = AtomicU64::new(0);

fn is_known_upstream_panic(info: &panic::PanicHookInfo<'_>) -> bool {
    let Some(loc) = info.location() else { return false };
    let file = loc.file().replace('\\', "/");
    let message = info
        .payload()
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| info.payload().downcast_ref::<&str>().copied())
        .unwrap_or("");
    file.contains("aws_lambda_events") && file.ends_with("src/encodings/time.rs") && message.contains("left == right")
}

/// Call from the target's `init:` block, after libfuzzer-sys installed its aborting panic hook:
/// wraps that hook so the known upstream panic, and only it, unwinds quietly while
/// `deserialize_event` runs.
pub fn install_panic_filter() {
    if std::env::var_os("RELAYCHAT_FUZZ_STRICT_UPSTREAM").is_some_and(|v| v != "0" && !v.is_empty()) {
        return;
    }
    let libfuzzer_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if TOLERATING.load(Ordering::Relaxed) && is_known_upstream_panic(info) {
            return;
        }
        libfuzzer_hook(info);
    }));
}

/// relaychat's reading of the bytes (what `serve_kafka` gets from lambda_runtime): never a panic.
pub fn deserialize_event(data: &[u8]) -> Result<MskEvent, serde_json::Error> {
    MskEvent::from_slice(data)
}

/// The reference reading, `serde_json::from_slice::<KafkaEvent>`; `None` when the bytes hit its
/// known panic.
pub fn reference_event(data: &[u8]) -> Option<Result<KafkaEvent, serde_json::Error>> {
    TOLERATING.store(true, Ordering::Relaxed);
    let result = panic::catch_unwind(|| serde_json::from_slice::<KafkaEvent>(data));
    TOLERATING.store(false, Ordering::Relaxed);
    match result {
        Ok(r) => Some(r),
        Err(_) => {
            // Only the filtered panic gets here: any other one aborted in libFuzzer's hook.
            if TOLERATED.fetch_add(1, Ordering::Relaxed) == 0 {
                eprintln!(
                    "relaychat-fuzz: tolerated known upstream panic: aws_lambda_events deserialize_milliseconds \
                     assert_eq!(frac, 0) on a fractional Kafka record timestamp (docs/fuzzing.md); \
                     RELAYCHAT_FUZZ_STRICT_UPSTREAM=1 makes it a crash"
                );
            }
            None
        }
    }
}

/// Reads the bytes both ways. Whatever the reference reads, relaychat reads too, and the same:
/// every group, offset, key, value and header. Returns relaychat's decoded records, checked.
pub fn check_bytes(data: &[u8]) -> Option<Vec<DecodedRecord>> {
    let ours = deserialize_event(data);
    let reference = if lambda_shaped(data) {
        reference_event(data).and_then(Result::ok)
    } else {
        None
    };
    match (ours, reference) {
        (Ok(event), reference) => Some(check_event(&event, reference.as_ref())),
        (Err(e), Some(_)) => panic!("aws_lambda_events reads this event but relaychat does not: {e}"),
        (Err(_), None) => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Invariants.
// ---------------------------------------------------------------------------------------------

/// The `(topic, partition)` a group must come back as, computed independently of the crate:
/// the first record's own fields win, else the `topic-partition` group key, else partition 0.
fn expected_group(key: &str, first: Option<&aws_lambda_events::event::kafka::KafkaRecord>) -> (String, i32) {
    let (key_topic, key_partition) = match key.rfind('-') {
        Some(i) => (key[..i].to_owned(), key[i + 1..].parse::<i32>().ok()),
        None => (key.to_owned(), None),
    };
    let topic = first.and_then(|r| r.topic.clone()).unwrap_or(key_topic);
    let partition = first
        .and_then(|r| i32::try_from(r.partition).ok())
        .or(key_partition)
        .unwrap_or(0);
    (topic, partition)
}

/// An object whose records are lists of objects. serde's derived structs (the reference's) also
/// read a JSON list as a struct's fields in order; Lambda never sends that, and relaychat's fields
/// are not the reference's, so such bytes are not compared.
fn lambda_shaped(data: &[u8]) -> bool {
    use serde_json::Value;
    let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(data) else {
        return false;
    };
    match top.get("records") {
        None | Some(Value::Null) => true,
        Some(Value::Object(groups)) => groups
            .values()
            .all(|g| g.as_array().is_some_and(|records| records.iter().all(Value::is_object))),
        Some(_) => false,
    }
}

/// Checks every batch and every record of relaychat's reading, against the reference's when it
/// read the bytes too. Returns the decoded records.
pub fn check_event(event: &MskEvent, reference: Option<&KafkaEvent>) -> Vec<DecodedRecord> {
    let batches = &event.partitions;
    assert_eq!(event.record_count(), batches.iter().map(|b| b.records.len()).sum::<usize>());
    for w in batches.windows(2) {
        assert!(
            (&w[0].topic, w[0].partition) <= (&w[1].topic, w[1].partition),
            "batches sorted by topic-partition"
        );
    }
    for b in batches {
        let offsets: Vec<i64> = b.ids().iter().map(|id| id.offset).collect();
        assert!(
            offsets.windows(2).all(|w| w[0] <= w[1]),
            "records sorted by offset: {offsets:?}"
        );
    }
    if let Some(reference) = reference {
        agrees_with_reference(event, reference);
    }

    let mut decoded = Vec::new();
    let mut failures = Vec::new();
    for batch in batches {
        let tp = batch.topic_partition();
        assert_eq!(tp, format!("{}-{}", batch.topic, batch.partition));
        for (id, record) in batch.ids().into_iter().zip(&batch.records) {
            // A record's id is its batch's topic-partition plus its own offset.
            assert_eq!((&id.topic, id.partition), (&batch.topic, batch.partition));
            assert_eq!(id.topic_partition(), tp);
            assert_eq!(id.to_string(), format!("{tp}@{}", id.offset));
            let failure = BatchItemFailure::new(&id);
            assert_eq!(
                (
                    failure.item_identifier.partition.as_str(),
                    failure.item_identifier.offset
                ),
                (tp.as_str(), id.offset)
            );
            failures.push(failure);
            match record {
                Ok(d) => {
                    assert_eq!(d.id, id);
                    check_decoded(d);
                    decoded.push(d.clone());
                }
                Err(bad) => {
                    assert_eq!(bad.raw.id, id);
                    match &bad.error {
                        SchemaError::InvalidBase64 { record, field, .. } => {
                            assert_eq!(record, &id);
                            assert!(*field == "key" || *field == "value", "field {field}");
                        }
                        SchemaError::MissingValue { record } => {
                            assert_eq!(record, &id);
                            assert!(bad.raw.value.is_empty());
                        }
                        SchemaError::TimestampOutOfRange { record, millis } => {
                            assert_eq!(record, &id);
                            // chrono's range is about ±262,000 years.
                            assert!(millis.unsigned_abs() > 8_000_000_000_000_000, "{millis} ms is in range");
                        }
                        other => panic!("undecodable record {id} with unexpected error {other:?}"),
                    }
                    let msg = bad.error.to_string();
                    let prefix = format!("record {id}: ");
                    assert!(
                        msg.starts_with(&prefix) && msg.len() > prefix.len(),
                        "error message {msg:?}"
                    );
                }
            }
        }
    }

    // The partial-batch response Lambda reads back has its documented shape and round-trips.
    let response = KafkaBatchResponse {
        batch_item_failures: failures,
    };
    let json = serde_json::to_vec(&response).expect("KafkaBatchResponse serialises");
    let back: KafkaBatchResponse = serde_json::from_slice(&json).expect("KafkaBatchResponse reads back");
    assert_eq!(back, response);

    decoded
}

/// The reference read the same bytes: one batch per group, under the topic-partition it names,
/// with every offset; each record it can decode (base64 by the `base64` crate) decoded the same.
fn agrees_with_reference(event: &MskEvent, reference: &KafkaEvent) {
    let batches = &event.partitions;
    assert_eq!(batches.len(), reference.records.len(), "one batch per record group");
    let mut expected: Vec<(String, i32, Vec<i64>)> = reference
        .records
        .iter()
        .map(|(key, records)| {
            let (t, p) = expected_group(key, records.first());
            let mut offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
            offsets.sort_unstable();
            (t, p, offsets)
        })
        .collect();
    let mut got: Vec<(String, i32, Vec<i64>)> = batches
        .iter()
        .map(|b| (b.topic.clone(), b.partition, b.ids().iter().map(|id| id.offset).collect()))
        .collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "batches = the event's groups, by topic-partition, with every offset");

    // Record by record where a topic-partition has one group (two groups naming the same one,
    // never sent by Lambda, cannot be told apart in the reference's unordered map).
    for (key, originals) in &reference.records {
        let (topic, partition) = expected_group(key, originals.first());
        let mut like = batches.iter().filter(|b| (&b.topic, b.partition) == (&topic, partition));
        let (Some(batch), None) = (like.next(), like.next()) else {
            continue;
        };
        // Both keep the event's order among equal offsets (a stable sort).
        let mut in_order: Vec<_> = originals.iter().collect();
        in_order.sort_by_key(|r| r.offset);
        assert_eq!(in_order.len(), batch.records.len());
        for (original, record) in in_order.into_iter().zip(&batch.records) {
            assert_eq!(kafka::id_of(record).offset, original.offset);
            let value = original.value.as_deref().map(|v| STANDARD.decode(v));
            let key = original.key.as_deref().map(|k| STANDARD.decode(k)).transpose();
            let mut headers: Vec<(String, Vec<u8>)> = original
                .headers
                .iter()
                .flat_map(|h| h.iter().map(|(k, v)| (k.clone(), v.iter().map(|b| *b as u8).collect())))
                .collect();
            headers.sort();
            let (raw_id, mut got_headers) = match record {
                Ok(d) => (&d.id, d.headers.clone()),
                Err(bad) => (&bad.raw.id, bad.raw.headers.clone()),
            };
            got_headers.sort();
            assert_eq!(got_headers, headers, "{raw_id}: the same headers");
            if let (Some(Ok(value)), Ok(key)) = (value, key) {
                let d = record
                    .as_ref()
                    .unwrap_or_else(|bad| panic!("{raw_id}: the reference decodes it, relaychat does not: {}", bad.error));
                assert_eq!((&d.key, &d.value), (&key, &value), "{raw_id}: the same key and value");
                // The reference goes through f64 seconds and may lose a millisecond.
                let drift = (d.timestamp.timestamp_millis() - original.timestamp.timestamp_millis()).abs();
                assert!(drift <= 1, "{raw_id}: timestamp off by {drift} ms");
            }
        }
    }
}

/// Everything that must hold for a record whose key and value decoded.
pub fn check_decoded(d: &DecodedRecord) {
    // The dead-letter copy carries the same bytes.
    let raw = RawRecord::from(d);
    assert_eq!(
        (&raw.id, &raw.key, &raw.value, &raw.headers),
        (&d.id, &d.key, &d.value, &d.headers)
    );
    for (name, _) in &d.headers {
        let first = d.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice());
        assert_eq!(d.header(name), first);
    }

    // What the local runtime builds for these bytes (msk_event) decodes back to them.
    let event = kafka::msk_event([d], &kafka::EventSource::default())
        .expect("msk_event builds a valid event");
    let mut again = event.partitions;
    assert_eq!(again.len(), 1);
    let again = again
        .remove(0)
        .records
        .remove(0)
        .expect("msk_event's record decodes");
    assert_eq!(
        (&again.id, &again.key, &again.value, &again.headers),
        (&d.id, &d.key, &d.value, &d.headers),
        "msk_event → partitions round trip"
    );

    // The value as every topic event type.
    if let Some(m) = parse_as::<ChatMessage>(d) {
        assert!(!m.content.as_str().trim().is_empty());
        assert!(m.content.as_str().chars().count() <= 4_000);
        assert!(m.sender_name.as_str().chars().count() <= 100);
        let title = Title::parse("Team lunch").expect("a valid title");
        for t in [None, Some(&title)] {
            for recipient in m.recipients.iter().chain(std::iter::once(&m.sender_id)) {
                let n = Notification::for_message(&m, recipient, t);
                assert_eq!(n.notification_id, format!("msg:{}", m.message_id));
                assert!(n.body.chars().count() <= 140, "preview longer than 140 characters");
                assert_eq!(Notification::from_json(&n.to_json()).ok().as_ref(), Some(&n));
            }
        }
    }
    parse_as::<MessageStatusUpdate>(d);
    parse_as::<TypingIndicator>(d);
    parse_as::<Notification>(d);
    parse_as::<AnalyticsEvent>(d);
}

/// `DecodedRecord::parse::<E>()`: an error names the record and says why; a value that parsed
/// writes back (to_json) to bytes that parse to the same value.
fn parse_as<E: TopicEvent + PartialEq + std::fmt::Debug>(d: &DecodedRecord) -> Option<E> {
    match d.parse::<E>() {
        Ok(e) => {
            assert!(e.schema_version() <= SCHEMA_VERSION);
            let json = e.to_json();
            assert!(!json.is_empty(), "to_json wrote nothing for {e:?}");
            match E::from_json(&json) {
                Ok(back) => assert_eq!(back, e, "to_json → from_json round trip"),
                Err(err) => panic!(
                    "{e:?} parsed but its own to_json does not: {err}\njson: {}",
                    String::from_utf8_lossy(&json)
                ),
            }
            Some(e)
        }
        Err(err) => {
            check_payload_error(&d.id, &err);
            None
        }
    }
}

fn check_payload_error(id: &RecordId, err: &SchemaError) {
    match err {
        SchemaError::InvalidPayload { record, source } => {
            assert_eq!(record, id);
            match source.as_ref() {
                SchemaError::Json(_) => {}
                SchemaError::UnsupportedVersion { found, supported } => {
                    assert!(found > supported && *supported == SCHEMA_VERSION)
                }
                other => panic!("parse error wraps an unexpected {other:?}"),
            }
            let msg = err.to_string();
            let prefix = format!("record {id}: invalid payload: ");
            assert!(
                msg.starts_with(&prefix) && msg.len() > prefix.len(),
                "error message {msg:?}"
            );
        }
        other => panic!("DecodedRecord::parse returned {other:?}, not InvalidPayload"),
    }
}
