//! DynamoDB faults: every call between the functions and DynamoDB Local goes through the test
//! kit's fault-injecting proxy, which answers a steady share of them with throttling (plain and
//! as a cancelled transaction) and 500s. Nothing that should be retried is dead-lettered, and
//! nothing is skipped: every acknowledged message is stored once, counted once as unread and in
//! analytics, and reaches every recipient (a DELIVERED receipt, or a notification when offline).

use std::time::{Duration, Instant};

use relaychat_adapters::kafka::DLQ_SOURCE_HEADER;
use relaychat_testkit::dynamo_faults::{DynamoFaults, Fault};
use relaychat_testkit::{read_topic, unique, unread};
use serde_json::json;

use crate::client::{Client, start_runtime_with};
use crate::storage;

/// Sends until acked, as a client would after `unavailable`; returns the acked message id.
async fn send_until_acked(client: &mut Client, conversation: &str, n: usize) -> (String, usize) {
    let mut refused = 0;
    loop {
        let reply = client
            .ask(
                json!({"action": "sendMessage", "conversationId": conversation, "content": format!("m{n}")}),
                "ack",
            )
            .await;
        match reply["type"].as_str() {
            Some("ack") => return (reply["messageId"].as_str().unwrap().to_owned(), refused),
            _ => {
                assert!(
                    matches!(reply["code"].as_str(), Some("unavailable" | "rate_limited")),
                    "{reply}"
                );
                refused += 1;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_5xx_from_dynamodb_lose_and_dead_letter_nothing() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let per_sender = if crate::long() { 200 } else { 30 };
    let upstream = std::env::var("DYNAMODB_ENDPOINT").expect("run with make test");
    let proxy = DynamoFaults::start(&upstream).await;
    let tables = relaychat_adapters::dynamo::TableNames::with_prefix(unique("faults") + "-");
    let (endpoint, captured) = (proxy.endpoint.clone(), tables.clone());
    let (running, topics) = start_runtime_with(|c| {
        c.infra.dynamodb_endpoint = Some(endpoint);
        c.tables = captured;
    })
    .await;
    // Straight to DynamoDB Local, for checking.
    let direct = storage::store(&upstream, &tables).await;

    // Three pairs chat; each pair's conversation also has an offline member (notifications).
    let mut senders = Vec::new();
    let mut readers = Vec::new();
    let mut conversations = Vec::new();
    for i in 0..3 {
        let (a, b, off) = (
            unique(&format!("a{i}")),
            unique(&format!("b{i}")),
            unique(&format!("o{i}")),
        );
        let mut sender = Client::connect(&running, &a, "A").await;
        let reader = Client::connect(&running, &b, "B").await;
        let created = sender
            .ask(
                json!({"action": "createConversation", "members": [b, off]}),
                "conversation",
            )
            .await;
        conversations.push((created["conversationId"].as_str().unwrap().to_owned(), b, off));
        senders.push(sender);
        readers.push(reader);
    }

    // Faults from now on: a transaction in 4 cancelled as throttled, a call in 9 throttled, a
    // call in 13 answered 500.
    proxy.fail_every(Some("TransactWriteItems"), Fault::TransactionThrottled, 4);
    proxy.fail_every(None, Fault::Throttle, 9);
    proxy.fail_every(None, Fault::ServerError, 13);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (mut sender, (conversation, _, _)) in senders.into_iter().zip(conversations.clone()) {
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut refused = 0;
            for n in 0..per_sender {
                let (id, r) = send_until_acked(&mut sender, &conversation, n).await;
                acked.push(id);
                refused += r;
                tokio::time::sleep(Duration::from_millis(110)).await;
            }
            (acked, refused, sender)
        }));
    }
    let mut acked = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let (ids, r, _sender) = t.await.unwrap();
        acked.push(ids);
        refused += r;
    }
    let acked_total: usize = acked.iter().map(Vec::len).sum();

    // Everything settles, through the faults: stored once, unread exact, delivered or notified.
    let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let mut missing = Vec::new();
    while started.elapsed() < Duration::from_secs(180) {
        missing.clear();
        for ((conversation, reader, offline), ids) in conversations.iter().zip(&acked) {
            let stored = storage::messages_in(&direct, std::slice::from_ref(conversation)).await;
            if stored != ids.len() {
                missing.push(format!("{conversation}: stored {stored} of {}", ids.len()));
            }
            let unread = unread(&direct, reader, conversation).await;
            if unread != ids.len() as i64 {
                missing.push(format!("{reader}: unread {unread} of {}", ids.len()));
            }
            let counted = direct
                .counter(&format!("conv#{conversation}#{day}"), "messages")
                .await
                .unwrap();
            if counted != ids.len() as i64 {
                missing.push(format!("{conversation}: counted {counted} of {}", ids.len()));
            }
            for id in ids {
                if !storage::has_item(
                    &direct,
                    &direct.tables().receipts(),
                    ("messageId", id),
                    ("userId", reader),
                )
                .await
                {
                    missing.push(format!("{id}: no DELIVERED for {reader}"));
                }
                let note = format!("msg:{id}");
                if !storage::has_item(
                    &direct,
                    &direct.tables().notifications(),
                    ("userId", offline),
                    ("notificationId", &note),
                )
                .await
                {
                    missing.push(format!("{id}: no notification for {offline}"));
                }
            }
        }
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settled_in = started.elapsed();
    proxy.clear();

    // Nothing from this test's topics was dead-lettered by any consumer.
    let ours = [
        &topics.chat_messages,
        &topics.message_status_events,
        &topics.notifications,
        &topics.analytics_events,
    ];
    let mut dead = 0;
    for dlq in [
        "persist-message-dlq",
        "deliver-message-dlq",
        "update-status-dlq",
        "push-notification-dlq",
        "analytics-dlq",
    ] {
        dead += read_topic(dlq, usize::MAX, Duration::from_secs(2))
            .into_iter()
            .filter(|r| {
                r.header(DLQ_SOURCE_HEADER)
                    .is_some_and(|s| ours.iter().any(|t| s.starts_with(format!("{t}-").as_bytes())))
            })
            .count();
    }
    println!(
        "proof: dynamodb-faults calls={} injected={} acked={acked_total} refused_then_retried={refused} dead_lettered={dead} skipped={} settled_in_ms={}",
        proxy.calls(),
        proxy.injected(),
        missing.len(),
        settled_in.as_millis()
    );
    assert!(proxy.injected() > 20, "faults were injected: {}", proxy.injected());
    assert!(missing.is_empty(), "skipped: {missing:#?}");
    assert_eq!(dead, 0, "nothing retryable was dead-lettered");
    running.stop().await;
}
