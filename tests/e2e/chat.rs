//! The WebSocket issue's scenario, through the local gateway, Kafka and every function.

use std::time::Duration;

use relaychat_testkit::read_topic;
use serde_json::json;

use crate::client::{Client, start_runtime};

/// Polls bob's conversation list until the first conversation's unread count is `n` (the
/// Kafka-side functions are asynchronous: persist and update-status may trail the frames).
async fn unread_becomes(client: &mut Client, n: i64) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..100 {
        last = client
            .ask(json!({"action": "listConversations"}), "conversations")
            .await;
        if last["conversations"][0]["unread"].as_i64() == Some(n) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("unread never became {n}: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_and_bob_chat_with_receipts_history_unread_and_offline_push() {
    let (running, topics) = start_runtime().await;
    let mut alice = Client::connect(&running, "alice", "Alice").await;
    let mut bob = Client::connect(&running, "bob", "Bob").await;

    // alice creates a conversation with bob
    let created = alice
        .ask(
            json!({"action": "createConversation", "members": ["bob"], "title": "Lunch"}),
            "conversation",
        )
        .await;
    assert_eq!(created["members"], json!(["alice", "bob"]));
    let conversation = created["conversationId"].as_str().unwrap().to_owned();

    // alice sends; she gets the ack, bob the message, then alice DELIVERED
    let ack = alice
        .ask(json!({"action": "sendMessage", "conversationId": conversation, "content": "hi bob", "clientMessageId": "m-1"}), "ack")
        .await;
    assert_eq!(
        (ack["status"].as_str(), ack["clientMessageId"].as_str()),
        (Some("SENT"), Some("m-1"))
    );
    let message_id = ack["messageId"].as_str().unwrap().to_owned();
    let received = bob.expect("message", |v| v["type"] == "message").await;
    assert_eq!(
        (received["messageId"].as_str(), received["content"].as_str()),
        (Some(message_id.as_str()), Some("hi bob"))
    );
    assert_eq!(
        (received["senderId"].as_str(), received["senderName"].as_str()),
        (Some("alice"), Some("Alice"))
    );
    let delivered = alice
        .expect("DELIVERED", |v| v["type"] == "status" && v["status"] == "DELIVERED")
        .await;
    assert_eq!(
        (delivered["messageId"].as_str(), delivered["userId"].as_str()),
        (Some(message_id.as_str()), Some("bob"))
    );

    // bob's unread count says 1 until he reads (persist-message may trail the delivery a little)
    let list = unread_becomes(&mut bob, 1).await;
    assert_eq!(
        list["conversations"][0]["lastMessage"]["messageId"],
        message_id.as_str()
    );

    // typing reaches bob
    alice
        .send(json!({"action": "typing", "conversationId": conversation, "isTyping": true}))
        .await;
    let typing = bob.expect("typing", |v| v["type"] == "typing").await;
    assert_eq!(
        (typing["userId"].as_str(), typing["isTyping"].as_bool()),
        (Some("alice"), Some(true))
    );

    // bob reads; alice hears READ; bob's unread drops to 0
    bob.send(json!({"action": "markRead", "conversationId": conversation, "messageId": message_id}))
        .await;
    let read = alice
        .expect("READ", |v| v["type"] == "status" && v["status"] == "READ")
        .await;
    assert_eq!(read["messageId"], message_id.as_str());
    unread_becomes(&mut bob, 0).await;

    // history agrees
    let history = alice
        .ask(json!({"action": "history", "conversationId": conversation}), "history")
        .await;
    let messages = history["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        (messages[0]["messageId"].as_str(), messages[0]["content"].as_str()),
        (Some(message_id.as_str()), Some("hi bob"))
    );

    // bob goes offline: alice's next message becomes a notification for bob
    bob.close().await;
    // Once the gateway has let go of bob's socket, a frame for him can only come back Gone.
    let gone_by = std::time::Instant::now() + Duration::from_secs(10);
    while running.connections.len() > 1 {
        assert!(std::time::Instant::now() < gone_by, "the gateway kept bob's socket");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ack = alice
        .ask(
            json!({"action": "sendMessage", "conversationId": conversation, "content": "are you there?"}),
            "ack",
        )
        .await;
    let second = ack["messageId"].as_str().unwrap().to_owned();
    let pushes = read_topic(&topics.notifications, 1, Duration::from_secs(20));
    assert_eq!(pushes.len(), 1, "one notification, for bob");
    assert_eq!(pushes[0].key.as_deref(), Some(&b"bob"[..]));
    assert_eq!(pushes[0].json()["notificationId"], format!("msg:{second}"));

    alice.close().await;
    running.stop().await;
}
