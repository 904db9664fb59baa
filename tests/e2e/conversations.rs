//! A new conversation appears at once for every member: real WebSocket clients, over the socket
//! and over the HTTP API.

use serde_json::{Value, json};

use crate::client::{Client, start_runtime, token};

fn announced<'a>(id: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |v: &Value| v["type"] == "conversation" && v["conversationId"] == id && v.get("requestId").is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_device_sees_a_new_conversation_at_once_but_the_one_that_asked() {
    let (running, _topics) = start_runtime().await;
    let mut alice = Client::connect(&running, "alice", "Alice").await;
    let mut alice_laptop = Client::connect(&running, "alice", "Alice").await;
    let mut bob = Client::connect(&running, "bob", "Bob").await;

    let id = alice.create_conversation(&["bob", "carol"]).await;
    let told = bob.expect("the new conversation", announced(&id)).await;
    assert_eq!(
        (told["members"].clone(), told["createdBy"].as_str()),
        (json!(["alice", "bob", "carol"]), Some("alice"))
    );
    alice_laptop
        .expect("the new conversation on alice's other device", announced(&id))
        .await;
    // The asking connection had the reply; ask once more so anything pushed to it has arrived.
    alice.ask(json!({"action": "listConversations"}), "conversations").await;
    assert_eq!(
        alice.pending_matching(announced(&id)),
        0,
        "no second copy for the asking connection"
    );

    // Over HTTP: every member's connections hear of it, the creator's included.
    let created: Value = reqwest::Client::new()
        .post(format!("http://{}/api/conversations", running.http))
        .bearer_auth(token(&running, "bob", "Bob").await)
        .json(&json!({"members": ["alice"], "title": "From the bot"}))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    let id = created["conversationId"].as_str().expect("an id").to_owned();
    let told = alice.expect("the HTTP-made conversation", announced(&id)).await;
    assert_eq!(told["title"], "From the bot");
    bob.expect("bob's own, made over HTTP", announced(&id)).await;

    for client in [alice, alice_laptop, bob] {
        client.close().await;
    }
    running.stop().await;
}
