//! A poison record injected by an independent Kafka client lands in the dead-letter topic with its
//! reason, and the partition moves on to the good record behind it.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use relaychat_adapters::kafka::{DLQ_REASON_HEADER, DLQ_SOURCE_HEADER};
use relaychat_testkit::{kafka_settings, read_topic, unique};
use serde_json::json;

use crate::client::{Client, start_runtime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_is_dead_lettered_and_the_partition_moves_on() {
    let (running, topics) = start_runtime().await;
    let user = unique("dave");
    let mut dave = Client::connect(&running, &user, "Dave").await;
    let created = dave
        .ask(
            json!({"action": "createConversation", "members": ["erin"]}),
            "conversation",
        )
        .await;
    let conversation = created["conversationId"].as_str().unwrap().to_owned();

    // An independent producer writes garbage keyed like the conversation (same partition)...
    let producer: FutureProducer = kafka_settings().client_config().create().unwrap();
    let marker = unique("poison");
    let poison = format!("{{\"schemaVersion\":1,\"marker\":\"{marker}\"}}");
    producer
        .send(
            FutureRecord::to(&topics.chat_messages)
                .key(conversation.as_str())
                .payload(poison.as_str()),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    // ...then a good message follows through the gateway.
    let ack = dave
        .ask(
            json!({"action": "sendMessage", "conversationId": conversation, "content": "after the poison"}),
            "ack",
        )
        .await;
    let good = ack["messageId"].as_str().unwrap().to_owned();

    // The good message is persisted: the partition was not blocked.
    let mut found = false;
    for _ in 0..100 {
        let history = dave
            .ask(json!({"action": "history", "conversationId": conversation}), "history")
            .await;
        if history["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["messageId"] == good.as_str()))
        {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(found, "the message behind the poison record was persisted");

    // The poison is in persist-message's dead-letter topic with the reason and its source.
    let dead: Vec<_> = read_topic("persist-message-dlq", 1, Duration::from_secs(20))
        .into_iter()
        .filter(|r| r.value == poison.as_bytes())
        .collect();
    assert_eq!(dead.len(), 1, "dead-lettered once");
    let reason = String::from_utf8(dead[0].header(DLQ_REASON_HEADER).unwrap().to_vec()).unwrap();
    assert!(reason.contains("missing field `messageId`"), "{reason}");
    let source = String::from_utf8(dead[0].header(DLQ_SOURCE_HEADER).unwrap().to_vec()).unwrap();
    assert!(source.starts_with(&format!("{}-", topics.chat_messages)), "{source}");
    dave.close().await;
    running.stop().await;
}
