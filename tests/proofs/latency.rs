//! Latency at low load against its floor, in one run on one broker: a bare rdkafka produce →
//! consume round trip (the least any Kafka-borne delivery can take here), then one pair of real
//! WebSocket clients chatting at two messages a second (send → the recipient's `message` frame,
//! through the gateway, ws-message, the broker and deliver-message). Every message must arrive;
//! the times are printed, not asserted: the speed issue's goal is a chat p50 within twice the
//! floor's (docs/performance.md).

use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use relaychat_testkit::{create_topics, kafka_settings, unique};
use serde_json::json;

use crate::client::{Client, start_runtime};

const ROUND_TRIPS: usize = 50;
const MESSAGES: usize = 20;

/// The median, in milliseconds.
fn p50(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    crate::percentile(&samples, 50.0)
}

/// Produce one record, wait until a consumer already at the end of the topic has it; repeat.
async fn kafka_floor() -> Vec<Duration> {
    let topic = unique("floor");
    create_topics(&[(&topic, 1)]).await;
    let settings = kafka_settings();
    let producer: FutureProducer = settings
        .client_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .create()
        .expect("producer");
    let consumer: StreamConsumer = settings
        .client_config()
        .set("group.id", unique("floor"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topic, 0, Offset::Beginning)
        .expect("assign");
    consumer.assign(&assignment).expect("assign");
    let mut stream = consumer.stream();
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for n in 0..ROUND_TRIPS + 5 {
        let payload = format!("floor-{n}");
        let started = Instant::now();
        producer
            .send(
                FutureRecord::to(&topic).key("k").payload(&payload),
                Duration::from_secs(5),
            )
            .await
            .expect("produced");
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("the record comes back")
                .expect("a stream")
                .expect("a record");
            if message.payload() == Some(payload.as_bytes()) {
                break;
            }
        }
        // The first few warm the connections up.
        if n >= 5 {
            samples.push(started.elapsed());
        }
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_at_low_load_against_a_bare_kafka_round_trip() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let floor = kafka_floor().await;

    let (running, _topics) = start_runtime().await;
    let (alice, bob) = (unique("alice"), unique("bob"));
    let mut sender = Client::connect(&running, &alice, "Alice").await;
    let mut reader = Client::connect(&running, &bob, "Bob").await;
    let conversation = sender.create_conversation(&[&bob]).await;
    // Warm-up: the first message goes all the way through before anything is measured.
    sender
        .ask(
            json!({"action": "sendMessage", "conversationId": conversation, "content": "warm-up"}),
            "ack",
        )
        .await;
    reader
        .expect("the warm-up message", |v| {
            v["type"] == "message" && v["content"] == "warm-up"
        })
        .await;
    let mut chat = Vec::with_capacity(MESSAGES);
    for n in 0..MESSAGES {
        let content = format!("m{n}");
        let started = Instant::now();
        let ack = sender
            .ask(
                json!({"action": "sendMessage", "conversationId": conversation, "content": content}),
                "ack",
            )
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        reader
            .expect("the message", |v| {
                v["type"] == "message" && v["content"] == content.as_str()
            })
            .await;
        chat.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    running.stop().await;
    let (floor_p50, chat_p50) = (p50(floor), p50(chat));
    println!(
        "proof: latency kafka_round_trip_p50_ms={floor_p50:.1} chat_p50_ms={chat_p50:.1} ratio={:.1} \
         (goal: chat within 2x the floor)",
        chat_p50 / floor_p50
    );
}
