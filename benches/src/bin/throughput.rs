//! Per-partition throughput of persist-message's and deliver-message's rules on the batch driver,
//! with every store, `@connections` and broker call delayed by an injected latency (10 ms: a
//! DynamoDB round trip from a busy Lambda), over one partition of 1,000 chat messages:
//! - in one conversation (one key: each record waits for the one before, as every record of a
//!   partition used to);
//! - over 100 conversations (records of a conversation in order, up to 16 conversations at once).
//!
//! Also counts the calls each message costs. `cargo run --release -p relaychat-bench --bin
//! throughput` (`make bench`); `BENCH_LATENCY_MS` and `BENCH_RECORDS` change the shape.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use relaychat_bench::{Deliver, Persist, chat_message};
use relaychat_core::Error;
use relaychat_core::batch::run_batch;
use relaychat_core::memory::Memory;
use relaychat_core::ports::{
    ChangeOutcome, ConnectionDirectory, DeadLetters, FramePoster, Inserted, MemberPages, MessageStore, PostOutcome,
    Publisher,
};
use relaychat_schema::MskEvent;
use relaychat_schema::events::TopicEvent;
use relaychat_schema::kafka::{EventSource, RawRecord, msk_event};
use relaychat_schema::{
    ChatMessage, ConnectionId, ConversationId, DecodedRecord, MessageChange, MessageId, RecordId, Topics, UserId,
};

/// The in-memory fakes behind a fixed latency per call, counting the calls.
struct Delayed {
    mem: Memory,
    latency: Duration,
    calls: AtomicUsize,
}

impl Delayed {
    async fn call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(self.latency).await;
    }
}

impl MessageStore for Delayed {
    async fn insert_message(&self, m: &ChatMessage) -> Result<Inserted, Error> {
        self.call().await;
        self.mem.insert_message(m).await
    }
    async fn set_last_message(&self, m: &ChatMessage) -> Result<(), Error> {
        self.call().await;
        self.mem.set_last_message(m).await
    }
    async fn apply_change(&self, change: &MessageChange) -> Result<ChangeOutcome, Error> {
        self.call().await;
        self.mem.apply_change(change).await
    }
    async fn messages_between(
        &self,
        c: &ConversationId,
        after: Option<MessageId>,
        up_to: MessageId,
        limit: usize,
    ) -> Result<Vec<(MessageId, UserId)>, Error> {
        self.call().await;
        self.mem.messages_between(c, after, up_to, limit).await
    }
}

impl MemberPages for Delayed {
    async fn members_page(
        &self,
        c: &ConversationId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserId>, Error> {
        self.call().await;
        self.mem.members_page(c, after, limit).await
    }
}

impl ConnectionDirectory for Delayed {
    async fn connections_of(&self, user: &UserId) -> Result<Vec<ConnectionId>, Error> {
        self.call().await;
        self.mem.connections_of(user).await
    }
    async fn remove_connection(&self, connection: &ConnectionId) -> Result<(), Error> {
        self.call().await;
        self.mem.remove_connection(connection).await
    }
}

impl FramePoster for Delayed {
    async fn post(&self, connection: &ConnectionId, frame: &[u8]) -> Result<PostOutcome, Error> {
        self.call().await;
        self.mem.post(connection, frame).await
    }
}

impl Publisher for Delayed {
    async fn publish(&self, topic: &str, key: &str, value: Vec<u8>) -> Result<(), Error> {
        self.call().await;
        self.mem.publish(topic, key, value).await
    }
    fn publish_best_effort(&self, topic: &str, key: &str, value: Vec<u8>) -> Result<(), Error> {
        self.mem.publish_best_effort(topic, key, value)
    }
}

impl DeadLetters for Delayed {
    async fn dead_letter(&self, record: &RawRecord, reason: &str) -> Result<(), Error> {
        self.mem.dead_letter(record, reason).await
    }
}

/// One partition of `records` chat messages over `conversations` conversations.
fn partition(records: usize, conversations: usize) -> MskEvent {
    let records: Vec<DecodedRecord> = (0..records)
        .map(|n| {
            let m = chat_message(n, conversations, 100);
            let id = RecordId {
                topic: "chat-messages".into(),
                partition: 0,
                offset: n as i64,
            };
            DecodedRecord::new(id, Some(m.conversation_id.as_str().as_bytes()), &m.to_json())
        })
        .collect();
    msk_event(&records, &EventSource::default()).unwrap_or_else(|e| panic!("an event: {e}"))
}

fn delayed(latency: Duration) -> Delayed {
    let mem = Memory::default();
    mem.connect("bob", "conn-bob");
    mem.connect("carol", "conn-carol");
    Delayed {
        mem,
        latency,
        calls: AtomicUsize::new(0),
    }
}

#[tokio::main]
async fn main() {
    let var = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let latency = Duration::from_millis(var("BENCH_LATENCY_MS", 10));
    let records = var("BENCH_RECORDS", 1_000) as usize;
    println!(
        "throughput: one partition of {records} chat messages (3 members, 2 online), {} ms per call",
        latency.as_millis()
    );
    println!(
        "{:>18} {:>16} {:>12} {:>14} {:>16}",
        "function", "conversations", "seconds", "records/s", "calls/record"
    );
    for conversations in [1, 100] {
        let event = partition(records, conversations);
        for function in ["persist-message", "deliver-message"] {
            let store = delayed(latency);
            let started = Instant::now();
            let response = match function {
                "persist-message" => run_batch(&event, &store, &Persist(&store)).await,
                _ => run_batch(&event, &store, &Deliver(&store, Topics::default())).await,
            };
            let took = started.elapsed();
            assert!(
                response.batch_item_failures.is_empty(),
                "{function}: every record handled"
            );
            let calls = store.calls.load(Ordering::Relaxed) as f64 / records as f64;
            println!(
                "{function:>18} {conversations:>16} {:>12.2} {:>14.0} {calls:>16.1}",
                took.as_secs_f64(),
                records as f64 / took.as_secs_f64()
            );
        }
    }
}
