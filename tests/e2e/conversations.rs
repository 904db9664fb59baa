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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_added_renamed_removed_and_leave_and_everyone_concerned_hears_of_it() {
    let (running, _topics) = start_runtime().await;
    let mut alice = Client::connect(&running, "alice", "Alice").await;
    let mut bob = Client::connect(&running, "bob", "Bob").await;
    let mut carol = Client::connect(&running, "carol", "Carol").await;
    let mut dave = Client::connect(&running, "dave", "Dave").await;
    let id = alice.create_conversation(&["bob", "carol"]).await;
    let changed = |id: &str, change: &str| {
        let (id, change) = (id.to_owned(), change.to_owned());
        move |v: &Value| {
            v["type"] == "conversation" && v["conversationId"] == id.as_str() && v["change"] == change.as_str()
        }
    };

    // Any member adds (over the socket): the newcomer hears of it.
    let added = bob
        .ask(
            json!({"action": "addMembers", "conversationId": id, "members": ["dave"]}),
            "conversation",
        )
        .await;
    assert_eq!(added["members"], json!(["alice", "bob", "carol", "dave"]), "{added}");
    let told = dave.expect("added", changed(&id, "membersAdded")).await;
    assert_eq!(told["by"], "bob");

    // Renamed and a member removed over HTTP, by the creator.
    let http = reqwest::Client::new();
    let alice_token = token(&running, "alice", "Alice").await;
    let renamed = http
        .patch(format!("http://{}/api/conversations/{id}", running.http))
        .bearer_auth(&alice_token)
        .json(&json!({"title": "Renamed"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(renamed.status().as_u16(), 200);
    assert_eq!(bob.expect("renamed", changed(&id, "renamed")).await["title"], "Renamed");
    let removed = http
        .delete(format!("http://{}/api/conversations/{id}/members/carol", running.http))
        .bearer_auth(&alice_token)
        .send()
        .await
        .expect("answer");
    assert_eq!(removed.status().as_u16(), 200);
    let told = carol.expect("removed", changed(&id, "memberRemoved")).await;
    assert_eq!(
        told["members"],
        json!(["alice", "bob", "dave"]),
        "the removed member hears of it too"
    );
    // Other execution environments trust members for up to 5 s; within 10 s carol is refused.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = carol
            .ask(json!({"action": "history", "conversationId": id}), "history")
            .await;
        if answer["code"] == "not_a_member" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "carol still reads it: {answer}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }

    // A non-creator cannot remove others; anyone leaves.
    let refused = bob
        .ask(
            json!({"action": "removeMember", "conversationId": id, "userId": "dave"}),
            "error",
        )
        .await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let left = dave
        .ask(
            json!({"action": "leaveConversation", "conversationId": id}),
            "conversation",
        )
        .await;
    assert_eq!(left["members"], json!(["alice", "bob"]));
    assert_eq!(alice.expect("dave left", changed(&id, "left")).await["by"], "dave");

    for client in [alice, bob, carol, dave] {
        client.close().await;
    }
    running.stop().await;
}
