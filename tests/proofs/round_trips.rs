//! Round trips: what one chat message costs across every function — DynamoDB calls (counted by
//! operation at the test kit's proxy in front of DynamoDB Local) and Kafka records produced (the
//! topics' end offsets before and after) — for a message in a 1:1 conversation with both members
//! online: ws-message's send, persist-message, deliver-message, update-status for the DELIVERED
//! receipt, analytics. Printed on a `proof:` line; the total is held to a budget so a change
//! that adds round trips shows here.

use std::collections::BTreeMap;
use std::time::Duration;

use relaychat_schema::TopicKind;
use relaychat_testkit::dynamo_faults::DynamoFaults;
use relaychat_testkit::{read_topic, records_in, unique};
use serde_json::json;

use crate::client::{Client, start_runtime_with};

const MESSAGES: usize = 20;
/// DynamoDB calls a message may cost in all: half of the 8.25 measured before the speed work
/// (3.35 now; docs/performance.md).
const DYNAMODB_CALLS_BUDGET: f64 = 4.1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_chat_message_costs_a_bounded_number_of_round_trips() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let upstream = std::env::var("DYNAMODB_ENDPOINT").expect("run with make test");
    let proxy = DynamoFaults::start(&upstream).await;
    let endpoint = proxy.endpoint.clone();
    let (running, topics) = start_runtime_with(|c| c.infra.dynamodb_endpoint = Some(endpoint)).await;
    let (alice, bob) = (unique("alice"), unique("bob"));
    let mut sender = Client::connect(&running, &alice, "Alice").await;
    let mut reader = Client::connect(&running, &bob, "Bob").await;
    let conversation = sender.create_conversation(&[&bob]).await;
    // The two connections' presence changes are queued without waiting (best effort): let them
    // reach the topic and be settled before counting, or their lookups count as the messages'.
    let presence = topics.name(TopicKind::PresenceEvents).to_owned();
    // (Read, not the broker's end offsets: Tansu's in-memory "latest" is not to be trusted.)
    let changes = tokio::task::block_in_place(|| read_topic(&presence, 2, Duration::from_secs(30)));
    assert!(
        changes.len() >= 2,
        "the connections' presence never arrived: {changes:?}"
    );
    crate::quiet(&running, Duration::from_secs(120)).await;

    let kinds = TopicKind::ALL;
    let before: Vec<i64> = kinds
        .iter()
        .map(|k| tokio::task::block_in_place(|| records_in(topics.name(*k))))
        .collect();
    proxy.reset_counts();
    for n in 0..MESSAGES {
        let ack = sender
            .ask(
                json!({"action": "sendMessage", "conversationId": conversation, "content": format!("m{n}")}),
                "ack",
            )
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        // Under the send budget (10 a second).
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    for n in 0..MESSAGES {
        let content = format!("m{n}");
        reader
            .expect("every message", |v| {
                v["type"] == "message" && v["content"] == content.as_str()
            })
            .await;
    }
    crate::quiet(&running, Duration::from_secs(120)).await;
    let calls = proxy.calls_by_operation();
    let produced: BTreeMap<&str, i64> = kinds
        .iter()
        .zip(&before)
        .map(|(k, b)| {
            let name = topics.name(*k);
            (
                k.spec().default_name,
                tokio::task::block_in_place(|| records_in(name)) - b,
            )
        })
        .collect();
    running.stop().await;

    let per = |n: usize| n as f64 / MESSAGES as f64;
    let total_calls: usize = calls.values().sum();
    let total_produced: i64 = produced.values().sum();
    let by_operation: Vec<String> = calls.iter().map(|(op, n)| format!("{op}={:.2}", per(*n))).collect();
    let by_topic: Vec<String> = produced
        .iter()
        .map(|(t, n)| format!("{t}={:.2}", *n as f64 / MESSAGES as f64))
        .collect();
    println!(
        "proof: round-trips messages={MESSAGES} dynamodb_calls_per_message={:.2} kafka_records_per_message={:.2} \
         dynamodb=[{}] kafka=[{}]",
        per(total_calls),
        total_produced as f64 / MESSAGES as f64,
        by_operation.join(" "),
        by_topic.join(" ")
    );
    assert!(
        per(total_calls) <= DYNAMODB_CALLS_BUDGET,
        "{:.2} DynamoDB calls a message, over the budget of {DYNAMODB_CALLS_BUDGET}: {calls:?}",
        per(total_calls)
    );
    assert!(
        produced["chat-messages"] >= MESSAGES as i64,
        "every message on the broker"
    );
}
