//! Poison and replay. An independent Kafka client writes 2,000 records into `chat-messages`, 5%
//! of them malformed in every way a producer can get wrong; every good one is stored, every bad
//! one dead-lettered with its reason, none lost, no partition stalled. Then every consumer group
//! is rewound to the start (a second runtime reads the same topics with fresh groups from the
//! earliest offset): nothing in DynamoDB changes.

use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::producer::{FutureProducer, FutureRecord};
use relaychat_adapters::kafka::DLQ_SOURCE_HEADER;
use relaychat_schema::events::TopicEvent;
use relaychat_schema::*;
use relaychat_testkit::{kafka_settings, read_topic, unique};

use crate::client::start_runtime_with;
use crate::storage;

/// The ways a producer can get a record wrong, each with what makes it wrong.
const MALFORMED: [&str; 7] = [
    "invalid JSON",
    "wrong types",
    "missing fields",
    "oversize content",
    "unknown schema version",
    "not UTF-8",
    "not an object",
];

fn good(conversation: &str, n: usize) -> Vec<u8> {
    ChatMessage {
        schema_version: SCHEMA_VERSION,
        message_id: MessageId::new(),
        conversation_id: ConversationId::parse(conversation).unwrap(),
        sender_id: UserId::parse("alice").unwrap(),
        sender_name: DisplayName::parse("Alice").unwrap(),
        content: MessageContent::parse(format!("message {n}")).unwrap(),
        client_message_id: None,
        sent_at: Utc::now(),
        recipients: vec![UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap()],
        large_group: false,
        fanout_after: None,
    }
    .to_json()
}

fn bad(kind: &str, conversation: &str, n: usize) -> Vec<u8> {
    let mut valid: serde_json::Value = serde_json::from_slice(&good(conversation, n)).unwrap();
    match kind {
        "invalid JSON" => return format!("{{\"schemaVersion\":1,\"messageId\":{n}").into_bytes(),
        "wrong types" => valid["recipients"] = serde_json::json!("bob"),
        "missing fields" => {
            valid.as_object_mut().unwrap().remove("conversationId");
        }
        "oversize content" => valid["content"] = serde_json::json!("x".repeat(4_001)),
        "unknown schema version" => valid["schemaVersion"] = serde_json::json!(99),
        "not UTF-8" => return vec![0xff, 0xfe, 0x00, n as u8],
        _ => return b"[1,2,3]".to_vec(),
    }
    serde_json::to_vec(&valid).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_dead_lettered_nothing_is_lost_and_a_replay_changes_nothing() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let total = if crate::long() { 20_000 } else { 2_000 };
    let tables = relaychat_adapters::dynamo::TableNames::with_prefix(unique("proof") + "-");
    let captured = tables.clone();
    let (running, topics) = start_runtime_with(|c| c.tables = captured).await;
    let store = storage::store(&running.dynamodb_endpoint, &tables).await;

    // 2,000 records over 20 conversations; every 20th malformed (5%), in 7 different ways.
    let conversations: Vec<String> = (0..20).map(|i| unique(&format!("c{i}"))).collect();
    let producer: FutureProducer = kafka_settings().client_config().set("linger.ms", "5").create().unwrap();
    let mut sends = Vec::with_capacity(total);
    let mut malformed = 0;
    for n in 0..total {
        let conversation = &conversations[n % conversations.len()];
        let value = if n % 20 == 7 {
            malformed += 1;
            bad(MALFORMED[(n / 20) % MALFORMED.len()], conversation, n)
        } else {
            good(conversation, n)
        };
        let producer = producer.clone();
        let topic = topics.chat_messages.clone();
        let key = conversation.clone();
        sends.push(tokio::spawn(async move {
            producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(&value),
                    Duration::from_secs(10),
                )
                .await
                .map(|_| ())
                .map_err(|(e, _)| e)
        }));
    }
    for s in sends {
        s.await.unwrap().expect("the broker took every record");
    }
    let started = Instant::now();

    // Every good record is stored, within a bounded time: no partition stalled on a bad one.
    let expected = total - malformed;
    let mut stored = 0;
    while started.elapsed() < Duration::from_secs(120) {
        stored = storage::messages_in(&store, &conversations).await;
        if stored >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let settled_in = started.elapsed();
    // Every bad one is in persist-message's dead-letter topic, with its source.
    let ours = |r: &relaychat_testkit::Received| {
        r.header(DLQ_SOURCE_HEADER)
            .is_some_and(|s| s.starts_with(format!("{}-", topics.chat_messages).as_bytes()))
    };
    let dead = read_topic("persist-message-dlq", usize::MAX, Duration::from_secs(15))
        .into_iter()
        .filter(ours)
        .count();
    let lost = total as i64 - stored as i64 - dead as i64;
    println!(
        "proof: poison in={total} malformed={malformed} stored={stored} dead_lettered={dead} lost={lost} settled_in_ms={}",
        settled_in.as_millis()
    );
    assert_eq!(stored, expected, "every good record stored once");
    assert_eq!(dead, malformed, "every bad record dead-lettered once");
    assert_eq!(lost, 0);

    // Replay: fresh consumer groups read both topics from the start again.
    let before = storage::snapshot(&store).await;
    running.stop().await;
    let captured = tables.clone();
    let same_topics = topics.clone();
    let (replay, _) = start_runtime_with(|c| {
        c.tables = captured;
        c.topics = same_topics;
    })
    .await;
    let started = Instant::now();
    // Caught up: every mapping's lag back to 0 after having read something.
    loop {
        let caught_up = replay.stats.lock().is_ok_and(|stats| {
            stats
                .iter()
                .filter(|m| m.topics.iter().any(|t| t == &topics.chat_messages))
                .all(|m| m.records as usize >= total && m.lag.values().all(|l| *l == 0))
        });
        if caught_up {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the replay never caught up"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The second-order events (DELIVERED, notifications, analytics) too.
    crate::quiet(&replay, Duration::from_secs(180)).await;
    let after = storage::snapshot(&store).await;
    let items: usize = before.values().map(Vec::len).sum();
    let mut differences = Vec::new();
    for (table, rows) in &before {
        let other = &after[table];
        differences.extend(
            rows.iter()
                .filter(|r| !other.contains(r))
                .map(|r| format!("{table} before: {r}")),
        );
        differences.extend(
            other
                .iter()
                .filter(|r| !rows.contains(r))
                .map(|r| format!("{table} after:  {r}")),
        );
    }
    let changed = differences.len();
    println!(
        "proof: replay records={total} items={items} changed={changed} caught_up_ms={}",
        started.elapsed().as_millis()
    );
    assert!(
        differences.is_empty(),
        "a replay changes nothing in DynamoDB; it changed:\n{}",
        differences.iter().take(12).cloned().collect::<Vec<_>>().join("\n")
    );
    replay.stop().await;
}
