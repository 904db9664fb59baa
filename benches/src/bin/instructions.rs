//! Instructions per record for the handlers on the in-memory ports, under callgrind
//! (`scripts/instructions.sh`): the batch driver, decoding and the rules, with no I/O, on one
//! thread, so the count repeats run after run and a regression shows as a number.
//!
//! `instructions <handler> <records>` decodes an MSK event of `records` records for the handler
//! and runs it once; with 0 records it measures everything but the records (the difference,
//! divided by the records, is the cost of one). Handlers: persist-message, deliver-message,
//! update-status, analytics.

use relaychat_bench::{Deliver, Persist, chat_message};
use relaychat_core::Error;
use relaychat_core::analytics::{Countable, count_events};
use relaychat_core::batch::{EachEvent, Parsed, RecordHandler, run_batch};
use relaychat_core::memory::{Memory, status_update};
use relaychat_core::status::{ReadByFrames, StatusPorts, apply_status_update};
use relaychat_schema::events::TopicEvent;
use relaychat_schema::kafka::{EventSource, msk_event_json};
use relaychat_schema::{
    ChatMessage, DecodedRecord, DeliveryStatus, KafkaBatchResponse, MessageStatusUpdate, RecordId, Topics,
};

struct Status<'a>(&'a Memory, Topics);
impl EachEvent for Status<'_> {
    type Event = MessageStatusUpdate;
    async fn handle_event(&self, u: &MessageStatusUpdate) -> Result<(), Error> {
        let ports = StatusPorts {
            store: self.0,
            directory: self.0,
            poster: self.0,
            publisher: self.0,
            topics: &self.1,
            read_by: &ReadByFrames::default(),
        };
        apply_status_update(&ports, u).await.map(|_| ())
    }
}

struct Count<'a>(&'a Memory);
impl RecordHandler for Count<'_> {
    type Event = Countable;
    async fn handle(&self, events: &[Parsed<'_, Countable>]) -> Result<(), (usize, Error)> {
        count_events(self.0, events).await
    }
}

/// The JSON bytes of an event of these values on one topic, over 3 partitions.
fn event_bytes(topic: &str, values: &[(String, Vec<u8>)]) -> Vec<u8> {
    let records: Vec<DecodedRecord> = values
        .iter()
        .enumerate()
        .map(|(n, (key, value))| {
            let id = RecordId {
                topic: topic.into(),
                partition: n as i32 % 3,
                offset: n as i64,
            };
            DecodedRecord::new(id, Some(key.as_bytes()), value)
        })
        .collect();
    serde_json::to_vec(&msk_event_json(&records, &EventSource::default())).unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (handler, records) = match args.as_slice() {
        [h, n] => (h.as_str(), n.parse::<usize>().unwrap_or(0)),
        _ => {
            eprintln!("usage: instructions <persist-message|deliver-message|update-status|analytics> <records>");
            std::process::exit(2);
        }
    };
    let mem = Memory::default();
    mem.connect("bob", "conn-bob");
    mem.connect("carol", "conn-carol");
    mem.connect("alice", "conn-alice");
    let messages: Vec<ChatMessage> = (0..records).map(|n| chat_message(n, 100, 200)).collect();
    let bytes = if handler == "update-status" {
        let values: Vec<(String, Vec<u8>)> = messages
            .iter()
            .map(|m| {
                (
                    "bob".to_owned(),
                    status_update(m, "bob", DeliveryStatus::Delivered).to_json(),
                )
            })
            .collect();
        event_bytes("message-status-events", &values)
    } else {
        let values: Vec<(String, Vec<u8>)> = messages
            .iter()
            .map(|m| (m.conversation_id.to_string(), m.to_json()))
            .collect();
        event_bytes("chat-messages", &values)
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => panic!("a runtime: {e}"),
    };
    let response: KafkaBatchResponse = runtime.block_on(async {
        let event = match serde_json::from_slice(&bytes) {
            Ok(e) => e,
            Err(e) => panic!("the event: {e}"),
        };
        let topics = Topics::default();
        match handler {
            "persist-message" => run_batch(&event, &mem, &Persist(&mem)).await,
            "deliver-message" => run_batch(&event, &mem, &Deliver(&mem, topics)).await,
            "update-status" => run_batch(&event, &mem, &Status(&mem, topics)).await,
            "analytics" => run_batch(&event, &mem, &Count(&mem)).await,
            other => panic!("no handler {other}"),
        }
    });
    assert!(
        response.batch_item_failures.is_empty(),
        "{handler}: every record handled"
    );
    assert!(mem.dead_letters().is_empty(), "{handler}: nothing dead-lettered");
}
