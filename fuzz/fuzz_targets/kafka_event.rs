//! Arbitrary bytes as the body Lambda hands a Kafka-triggered function: read by
//! `relaychat_schema::MskEvent` (what `serve_kafka` does) and, as a reference, by
//! `aws_lambda_events::event::kafka::KafkaEvent`; then every decoded record parsed as ChatMessage,
//! MessageStatusUpdate, TypingIndicator, Notification and AnalyticsEvent.
//!
//! Beyond "no panic" (kafka_common.rs): whatever the reference reads, relaychat reads the same
//! (groups, offsets, keys, values, headers); batches are exactly the event's record groups under the
//! topic-partition they name, with every offset, in order; each record's id is
//! `topic-partition@offset` of its batch; an undecodable record is kept with an error naming it;
//! a parse error is `InvalidPayload` naming the record; what parsed writes back (to_json) to the
//! same value; msk_event's bytes decode back to the same record.
//!
//! Seeds: fuzz/seeds/kafka_event (the Kafka events of events/*.json, compacted, and a few edge cases).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "kafka_common.rs"]
mod kafka_common;

fuzz_target!(init: kafka_common::install_panic_filter(), |data: &[u8]| {
    kafka_common::check_bytes(data);
});
