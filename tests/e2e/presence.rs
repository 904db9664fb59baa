//! Presence end to end: real WebSocket clients connect and disconnect through the local gateway;
//! ws-connect and ws-disconnect publish to `presence-events`; update-presence tells the users who
//! share a conversation. `getPresence` and `GET /api/users/{id}/presence` read it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::client::{Client, start_runtime, token};

fn presence_of<'a>(user: &'a str, status: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |v: &Value| v["type"] == "presence" && v["userId"] == user && v["status"] == status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn co_members_see_each_other_come_and_go_and_a_quick_reconnect_tells_nobody() {
    let (running, _topics) = start_runtime().await;
    let mut alice = Client::connect(&running, "alice", "Alice").await;
    alice.create_conversation(&["bob"]).await;

    let bob = Client::connect(&running, "bob", "Bob").await;
    alice.expect("bob online", presence_of("bob", "online")).await;
    let asked = alice
        .ask(
            json!({"action": "getPresence", "users": ["bob", "mallory"]}),
            "presence",
        )
        .await;
    assert_eq!(asked["type"], "presence", "{asked}");
    assert_eq!(
        asked["users"],
        json!([{"userId": "bob", "status": "online"}]),
        "mallory shares no conversation with alice"
    );

    // bob leaves: after the grace, alice hears he is offline, with when he was last seen.
    bob.close().await;
    let offline = alice.expect("bob offline", presence_of("bob", "offline")).await;
    assert!(offline["lastSeen"].is_string(), "{offline}");

    // bob reloads his page: a close and a connect within the grace. Nobody hears of it.
    let bob = Client::connect(&running, "bob", "Bob").await;
    alice.expect("bob online again", presence_of("bob", "online")).await;
    bob.close().await;
    let bob = Client::connect(&running, "bob", "Bob").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Anything pending arrives by now: ask once more, so the socket is read past it.
    let asked = alice
        .ask(json!({"action": "getPresence", "users": ["bob"]}), "presence")
        .await;
    assert_eq!(asked["users"][0]["status"], "online");
    assert_eq!(
        alice.pending_matching(presence_of("bob", "offline")) + alice.pending_matching(presence_of("bob", "online")),
        0,
        "the reload reached nobody"
    );

    // Over HTTP: visible to a co-member, not to a stranger.
    let http = reqwest::Client::new();
    let url = format!("http://{}/api/users/bob/presence", running.http);
    let seen: Value = http
        .get(&url)
        .bearer_auth(token(&running, "alice", "Alice").await)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    assert_eq!(seen["users"][0]["status"], "online", "{seen}");
    let stranger = http
        .get(&url)
        .bearer_auth(token(&running, "mallory", "Mallory").await)
        .send()
        .await
        .expect("answer");
    assert_eq!(stranger.status().as_u16(), 404);

    bob.close().await;
    alice.close().await;
    running.stop().await;
}
