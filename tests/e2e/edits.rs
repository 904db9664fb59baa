//! Edits and deletions over the socket: real WebSocket clients against the local runtime, the
//! change going through `chat-messages` to persist-message and deliver-message like a message.

use serde_json::{Value, json};

use crate::client::{Client, start_runtime};

/// Asks for history until the newest message satisfies `want`; that message.
async fn newest_becomes(client: &mut Client, conversation: &str, want: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..150 {
        let history = client
            .ask(
                json!({"action": "history", "conversationId": conversation, "limit": 1}),
                "history",
            )
            .await;
        if want(&history["messages"][0]) {
            return history["messages"][0].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the newest message of {conversation} never became as wanted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_edits_then_deletes_and_every_member_device_sees_both() {
    let (running, _topics) = start_runtime().await;
    let mut alice = Client::connect(&running, "alice", "Alice").await;
    let mut alice_laptop = Client::connect(&running, "alice", "Alice").await;
    let mut bob = Client::connect(&running, "bob", "Bob").await;
    let conversation = alice.create_conversation(&["bob", "carol"]).await;
    let ack = alice
        .ask(
            json!({"action": "sendMessage", "conversationId": conversation, "content": "lunch at 1?"}),
            "ack",
        )
        .await;
    let id = ack["messageId"].as_str().expect("an id").to_owned();
    bob.expect("the message", |v| v["type"] == "message").await;
    newest_becomes(&mut bob, &conversation, |m| m["messageId"] == id.as_str()).await;

    // bob may not change alice's message.
    let refused = bob
        .ask(
            json!({"action": "deleteMessage", "conversationId": conversation, "messageId": id}),
            "error",
        )
        .await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("forbidden"))
    );

    let edited = alice
        .ask(
            json!({"action": "editMessage", "conversationId": conversation, "messageId": id, "content": "lunch at 2?"}),
            "messageEdited",
        )
        .await;
    assert_eq!(
        (edited["type"].as_str(), edited["content"].as_str()),
        (Some("messageEdited"), Some("lunch at 2?"))
    );
    for device in [&mut bob, &mut alice_laptop] {
        let live = device.expect("the edit", |v| v["type"] == "messageEdited").await;
        assert_eq!(
            (live["messageId"].as_str(), live["content"].as_str()),
            (Some(id.as_str()), Some("lunch at 2?"))
        );
    }
    let stored = newest_becomes(&mut bob, &conversation, |m| m["content"] == "lunch at 2?").await;
    assert!(stored["editedAt"].is_string(), "{stored}");

    let deleted = alice
        .ask(
            json!({"action": "deleteMessage", "conversationId": conversation, "messageId": id}),
            "messageDeleted",
        )
        .await;
    assert_eq!(deleted["type"], "messageDeleted", "{deleted}");
    for device in [&mut bob, &mut alice_laptop] {
        let live = device.expect("the deletion", |v| v["type"] == "messageDeleted").await;
        assert_eq!(live["messageId"], id.as_str());
    }
    let tombstone = newest_becomes(&mut alice, &conversation, |m| m["deletedAt"].is_string()).await;
    assert_eq!(
        (tombstone["messageId"].as_str(), tombstone["content"].as_str()),
        (Some(id.as_str()), Some(""))
    );

    for client in [alice, alice_laptop, bob] {
        client.close().await;
    }
    running.stop().await;
}
