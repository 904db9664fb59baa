//! Arbitrary bytes as the body Lambda hands a Kafka-triggered function: `serde_json::from_slice`
//! into `aws_lambda_events::event::kafka::KafkaEvent` (what lambda_runtime does), then
//! `relaychat_schema::kafka::partitions`, then every decoded record parsed as ChatMessage,
//! MessageStatusUpdate, TypingIndicator, Notification and AnalyticsEvent.
//!
//! Beyond "no panic" (kafka_common.rs): batches are exactly the event's record groups under the
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
    let Some(Ok(event)) = kafka_common::deserialize_event(data) else {
        return;
    };
    kafka_common::check_event(&event);
});
