//! Shared by the bench binaries: generated MSK events, and timing in interleaved rounds.

use std::time::{Duration, Instant};

use relaychat_core::Error;
use relaychat_core::batch::EachEvent;
use relaychat_core::delivery::deliver_event;
use relaychat_core::persist::persist_event;
use relaychat_core::ports::{ConnectionDirectory, FramePoster, MemberPages, MessageStore, Publisher};
use relaychat_schema::events::TopicEvent;
use relaychat_schema::kafka::{EventSource, msk_event_json};
use relaychat_schema::{ChatEvent, ChatMessage, DecodedRecord, RecordId, Topics};

/// A chat message of about `content_chars` characters of content, in one of `conversations`.
pub fn chat_message(n: usize, conversations: usize, content_chars: usize) -> ChatMessage {
    let conversation = format!("conv-{}", n % conversations.max(1));
    let mut m = relaychat_core::memory::sample_message(&conversation, "alice", &["alice", "bob", "carol"]);
    let words = "lunch at noon? the usual place, or somewhere new this week ";
    let content: String = words.chars().cycle().take(content_chars.max(1)).collect();
    m.content = relaychat_schema::MessageContent::parse(content).unwrap_or(m.content);
    m
}

/// The JSON bytes of an MSK event of `records` chat messages over `partitions` partitions, each
/// with a `traceparent` header, as Lambda delivers them.
pub fn chat_event_bytes(records: usize, partitions: i32, content_chars: usize) -> Vec<u8> {
    let records: Vec<DecodedRecord> = (0..records)
        .map(|n| {
            let m = chat_message(n, 100, content_chars);
            let id = RecordId {
                topic: "chat-messages".into(),
                partition: n as i32 % partitions.max(1),
                offset: n as i64,
            };
            let mut r = DecodedRecord::new(id, Some(m.conversation_id.as_str().as_bytes()), &m.to_json());
            r.headers = vec![(
                "traceparent".to_owned(),
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec(),
            )];
            r.timestamp = chrono::DateTime::from_timestamp_millis(1_764_064_800_000).unwrap_or_default();
            r
        })
        .collect();
    serde_json::to_vec(&msk_event_json(&records, &EventSource::default()))
        .unwrap_or_else(|e| panic!("serialisable: {e}"))
}

/// Runs each contender `rounds` times, interleaved (A B C, A B C, ...), so the machine's drift
/// falls on all alike; returns each one's median.
pub fn interleaved(rounds: usize, contenders: &mut [(&str, &mut dyn FnMut() -> usize)]) -> Vec<Duration> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); contenders.len()];
    for _ in 0..rounds {
        for (i, (_, run)) in contenders.iter_mut().enumerate() {
            let started = Instant::now();
            std::hint::black_box(run());
            times[i].push(started.elapsed());
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect()
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// persist-message's handler, as its crate has it, on any store (the fakes, with or without delays).
pub struct Persist<'a, S>(pub &'a S);

impl<S: MessageStore> EachEvent for Persist<'_, S> {
    type Event = ChatEvent;
    async fn handle_event(&self, event: &ChatEvent) -> Result<(), Error> {
        persist_event(self.0, event).await
    }
}

/// deliver-message's handler, as its crate has it, on one value serving every port.
pub struct Deliver<'a, S>(pub &'a S, pub Topics);

impl<S: MemberPages + ConnectionDirectory + FramePoster + Publisher> EachEvent for Deliver<'_, S> {
    type Event = ChatEvent;
    async fn handle_event(&self, event: &ChatEvent) -> Result<(), Error> {
        deliver_event(self.0, self.0, self.0, self.0, &self.1, event).await
    }
}
