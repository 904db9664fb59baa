//! Reading the JSON Lambda sends a Kafka-triggered function straight into partition batches.
//!
//! No intermediate event: base64 keys and values are decoded from text borrowed from the
//! invocation's bytes, header values are read as bytes as they come, and each record becomes a
//! [`DecodedRecord`] (or an [`Undecodable`] with its reason) in one pass. A general-purpose event
//! type would allocate a `String` per field and a map per header first, then copy again.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::DateTime;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{BatchRecord, DecodedRecord, MskEvent, PartitionBatch, RawRecord, RecordId, Undecodable};
use crate::SchemaError;

impl<'de> Deserialize<'de> for MskEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The envelope; `eventSource`, `eventSourceArn` and `bootstrapServers` are not needed.
        #[derive(Deserialize)]
        struct Envelope {
            #[serde(default)]
            records: Option<Groups>,
        }
        let envelope = Envelope::deserialize(deserializer)?;
        let mut partitions = envelope.records.map(|g| g.0).unwrap_or_default();
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(Self { partitions })
    }
}

/// `records`: `{"topic-partition": [record, ...], ...}`, one batch per group. A group key given
/// twice keeps its last list, as a JSON object would.
struct Groups(Vec<PartitionBatch>);

impl<'de> Deserialize<'de> for Groups {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GroupsVisitor;
        impl<'de> Visitor<'de> for GroupsVisitor {
            type Value = Groups;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of record lists by topic-partition")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Groups, A::Error> {
                let mut groups: Vec<(String, PartitionBatch)> = Vec::new();
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    let records: Vec<WireRecord<'de>> = map.next_value()?;
                    let batch = batch_of(&key, records);
                    keep_last(&mut groups, key, batch);
                }
                Ok(Groups(groups.into_iter().map(|(_, b)| b).collect()))
            }
        }
        deserializer.deserialize_map(GroupsVisitor)
    }
}

/// Adds `key`'s value, or replaces the one given for it before: a JSON object's last value of a
/// key is its value.
fn keep_last<V>(entries: &mut Vec<(String, V)>, key: Cow<'_, str>, value: V) {
    match entries.iter_mut().find(|(k, _)| *k == key) {
        Some((_, earlier)) => *earlier = value,
        None => entries.push((key.into_owned(), value)),
    }
}

/// One group's records, in offset order, under the first record's own topic and partition when
/// it names them, else the group key's.
fn batch_of(group_key: &str, mut records: Vec<WireRecord<'_>>) -> PartitionBatch {
    let (topic, partition) = split_group_key(group_key, records.first());
    records.sort_by_key(|r| r.offset);
    PartitionBatch {
        records: records.into_iter().map(|r| r.decode(&topic, partition)).collect(),
        topic,
        partition,
    }
}

/// `topic-partition` → (topic, partition); the record's own fields win when present.
fn split_group_key(group_key: &str, first: Option<&WireRecord<'_>>) -> (String, i32) {
    let (key_topic, key_partition) = match group_key.rsplit_once('-') {
        Some((t, p)) => (t, p.parse::<i32>().ok()),
        None => (group_key, None),
    };
    let topic = first
        .and_then(|r| r.topic.as_ref())
        .map_or(key_topic, |Text(t)| t.as_ref())
        .to_owned();
    let partition = first
        .and_then(|r| r.partition)
        .and_then(|p| i32::try_from(p).ok())
        .or(key_partition)
        .unwrap_or_default();
    (topic, partition)
}

/// A record as Lambda sends it. `offset` and `timestamp` are required; the rest may be absent or
/// null (`timestampType` and anything unknown are skipped).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRecord<'a> {
    #[serde(borrow, default)]
    topic: Option<Text<'a>>,
    #[serde(default)]
    partition: Option<i64>,
    offset: i64,
    timestamp: Millis,
    #[serde(borrow, default)]
    key: Option<Base64<'a>>,
    #[serde(borrow, default)]
    value: Option<Base64<'a>>,
    #[serde(default)]
    headers: Option<Headers>,
}

impl WireRecord<'_> {
    fn decode(self, topic: &str, partition: i32) -> BatchRecord {
        let id = RecordId {
            topic: topic.to_owned(),
            partition,
            offset: self.offset,
        };
        let headers = self.headers.map(|h| h.0).unwrap_or_default();
        let decoded = (|| {
            let key = self.key.as_ref().map(|k| decode_b64(&id, "key", k)).transpose()?;
            let value = self
                .value
                .as_ref()
                .ok_or_else(|| SchemaError::MissingValue { record: id.clone() })?;
            let value = decode_b64(&id, "value", value)?;
            let timestamp =
                DateTime::from_timestamp_millis(self.timestamp.0).ok_or_else(|| SchemaError::TimestampOutOfRange {
                    record: id.clone(),
                    millis: self.timestamp.0,
                })?;
            Ok((key, value, timestamp))
        })();
        match decoded {
            Ok((key, value, timestamp)) => Ok(DecodedRecord {
                id,
                key,
                value,
                headers,
                timestamp,
            }),
            Err(error) => {
                let raw = RawRecord {
                    key: self.key.as_ref().map(decode_or_text),
                    value: self.value.as_ref().map(decode_or_text).unwrap_or_default(),
                    headers,
                    id,
                };
                Err(Box::new(Undecodable { raw, error }))
            }
        }
    }
}

/// Decodes with SIMD where the CPU has it; text it refuses is decoded again by the `base64` crate,
/// whose error says what is wrong and where.
fn decode(Base64(text): &Base64<'_>) -> Result<Vec<u8>, base64::DecodeError> {
    base64_simd::STANDARD
        .decode_to_vec(text)
        .or_else(|_| STANDARD.decode(text))
}

fn decode_b64(id: &RecordId, field: &'static str, text: &Base64<'_>) -> Result<Vec<u8>, SchemaError> {
    decode(text).map_err(|source| SchemaError::InvalidBase64 {
        record: id.clone(),
        field,
        source,
    })
}

/// The decoded bytes, or the text as sent when it is not base64 (for a dead letter).
fn decode_or_text(text: &Base64<'_>) -> Vec<u8> {
    decode(text).unwrap_or_else(|_| text.0.to_vec())
}

/// A base64 string of the event, as bytes borrowed from the invocation's bytes unless it holds
/// escapes (base64 is ASCII: the decoder checks every byte, so UTF-8 need not be checked first).
struct Base64<'a>(Cow<'a, [u8]>);

impl<'de: 'a, 'a> Deserialize<'de> for Base64<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Base64Visitor;
        impl<'de> Visitor<'de> for Base64Visitor {
            type Value = Cow<'de, [u8]>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v.as_bytes()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.as_bytes().to_vec()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.into_bytes()))
            }
        }
        // serde_json reads a string asked for as bytes without checking its UTF-8.
        deserializer.deserialize_bytes(Base64Visitor).map(Base64)
    }
}

/// A string of the event, borrowed from the invocation's bytes unless it holds escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        deserializer.deserialize_str(TextVisitor).map(Text)
    }
}

/// The record's timestamp in milliseconds: a number, or a number in a string (a fraction is cut).
struct Millis(i64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MillisVisitor;
        impl Visitor<'_> for MillisVisitor {
            type Value = Millis;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("milliseconds since the epoch")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Millis, E> {
                Ok(Millis(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Millis, E> {
                i64::try_from(v)
                    .map(Millis)
                    .map_err(|_| E::custom(format_args!("timestamp {v} is out of range")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Millis, E> {
                if v.is_finite() && v.abs() < i64::MAX as f64 {
                    Ok(Millis(v.trunc() as i64))
                } else {
                    Err(E::custom(format_args!("timestamp {v} is out of range")))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Millis, E> {
                match v.parse::<i64>() {
                    Ok(ms) => Ok(Millis(ms)),
                    Err(_) => v
                        .parse::<f64>()
                        .map_err(|_| E::custom(format_args!("timestamp {v:?} is not a number")))
                        .and_then(|f| self.visit_f64(f)),
                }
            }
        }
        deserializer.deserialize_any(MillisVisitor)
    }
}

/// `headers`: `[{"name": [signed bytes]}, ...]`, in order. A name given twice in one object keeps
/// its last value, as a JSON object would.
struct Headers(Vec<(String, Vec<u8>)>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadersVisitor;
        impl<'de> Visitor<'de> for HeadersVisitor {
            type Value = Headers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of header objects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Headers, A::Error> {
                let mut headers = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(64));
                while let Some(HeaderObject(entries)) = seq.next_element()? {
                    headers.extend(entries);
                }
                Ok(Headers(headers))
            }
        }
        deserializer.deserialize_seq(HeadersVisitor)
    }
}

/// One object of the header list (Lambda sends one name each).
struct HeaderObject(Vec<(String, Vec<u8>)>);

impl<'de> Deserialize<'de> for HeaderObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = HeaderObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a header object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HeaderObject, A::Error> {
                let mut entries: Vec<(String, Vec<u8>)> = Vec::with_capacity(1);
                while let Some(Text(name)) = map.next_key::<Text<'de>>()? {
                    let SignedBytes(value) = map.next_value()?;
                    keep_last(&mut entries, name, value);
                }
                Ok(HeaderObject(entries))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// A header value: Java's signed bytes as JSON numbers, reinterpreted (not converted) as bytes.
/// The list is taken as raw JSON (already checked by the parser) and its numbers read in one
/// tight loop: going through serde for each of a `traceparent`'s 55 numbers cost more than the
/// rest of the record.
struct SignedBytes(Vec<u8>);

impl<'de> Deserialize<'de> for SignedBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        signed_bytes(raw.get())
            .map(SignedBytes)
            .ok_or_else(|| de::Error::custom(format_args!("header value {} is not a list of signed bytes", raw.get())))
    }
}

/// `[1, -2, 127]` → the bytes; `None` unless a list of whole numbers in `-128..=127`. The text is
/// valid JSON already (the parser checked it), so anything but digits, `-`, `,` and white space
/// means a value of another kind.
fn signed_bytes(json: &str) -> Option<Vec<u8>> {
    let items = json.as_bytes().strip_prefix(b"[")?.strip_suffix(b"]")?;
    let mut bytes = Vec::with_capacity(items.len() / 3 + 1);
    let mut at = skip_space(items, 0);
    if at == items.len() {
        return Some(bytes);
    }
    loop {
        let negative = items[at] == b'-';
        at += usize::from(negative);
        let digits = at;
        let mut magnitude: i16 = 0;
        while let Some(d) = items.get(at).filter(|b| b.is_ascii_digit()) {
            if at - digits == 3 {
                return None;
            }
            magnitude = magnitude * 10 + i16::from(d - b'0');
            at += 1;
        }
        if at == digits {
            return None;
        }
        bytes.push(i8::try_from(if negative { -magnitude } else { magnitude }).ok()? as u8);
        at = skip_space(items, at);
        match items.get(at) {
            None => return Some(bytes),
            Some(b',') => at = skip_space(items, at + 1),
            Some(_) => return None,
        }
        if at == items.len() {
            return None;
        }
    }
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_bytes_are_read_as_json_would_read_them() {
        assert_eq!(signed_bytes("[]"), Some(vec![]));
        assert_eq!(signed_bytes("[ ]"), Some(vec![]));
        assert_eq!(
            signed_bytes("[0,-0,127,-128, 1 ,\n-1]"),
            Some(vec![0, 0, 127, 0x80, 1, 0xFF])
        );
        for bad in [
            "[128]", "[-129]", "[1.0]", "[1e2]", "[\"1\"]", "[null]", "[[1]]", "[-]", "[1000]", "[0001]", "{}", "1",
            "[1,]",
        ] {
            assert_eq!(signed_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_event_reads_the_same_through_lambda_runtimes_error_path_wrapper() {
        // lambda_runtime deserialises through serde_path_to_error: borrowed text and raw header
        // lists must survive the wrapper.
        let json = br#"{"records":{"t-0":[{"offset":1,"timestamp":0,"value":"eA==","headers":[{"h":[1,-1]}]}]}}"#;
        let de = &mut serde_json::Deserializer::from_slice(json);
        let event: MskEvent = serde_path_to_error::deserialize(de).unwrap();
        let record = event.partitions[0].records[0].as_ref().unwrap();
        assert_eq!(
            (record.value.as_slice(), record.header("h")),
            (&b"x"[..], Some(&[1u8, 0xFF][..]))
        );
        let bad = br#"{"records":{"t-0":[{"offset":1,"timestamp":0,"value":"eA==","headers":[{"h":[300]}]}]}}"#;
        let err = serde_path_to_error::deserialize::<_, MskEvent>(&mut serde_json::Deserializer::from_slice(bad))
            .unwrap_err();
        assert!(err.to_string().contains("[300] is not a list of signed bytes"), "{err}");
    }
}
