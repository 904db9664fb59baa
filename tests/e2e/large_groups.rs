//! A group of 1,000 end to end: grown past a small group's size with one `addMembers`, its
//! messages fanned out page by page (members online in the first and in the last page get them),
//! unread counted by sequence, reads counted by position (the sender hears read-by counts live and
//! sees them in history), and its members leave as in any group.

use std::time::Duration;

use serde_json::{Value, json};

use crate::client::{Client, start_runtime, token};

const MEMBERS: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_a_thousand_members_chats_end_to_end() {
    let (running, _topics) = start_runtime().await;
    let mut alice = Client::connect(&running, "alice", "Alice").await;
    let mut bob = Client::connect(&running, "bob", "Bob").await;
    // "zed" sorts after every "member-…": the last page of the fan-out.
    let mut zed = Client::connect(&running, "zed", "Zed").await;
    let others: Vec<String> = (0..MEMBERS - 3).map(|i| format!("member-{i:04}")).collect();

    let conversation = alice.create_conversation(&["bob", &others[0]]).await;
    let mut added: Vec<&str> = others[1..].iter().map(String::as_str).collect();
    added.push("zed");
    let grown = alice
        .ask(
            json!({"action": "addMembers", "conversationId": conversation, "members": added}),
            "conversation",
        )
        .await;
    assert_eq!(
        (grown["memberCount"].as_u64(), grown["members"].as_array().map(Vec::len)),
        (Some(MEMBERS as u64), Some(0)),
        "{grown}"
    );
    zed.expect("the group zed was added to", |v| {
        v["type"] == "conversation" && v["conversationId"] == conversation.as_str()
    })
    .await;

    // alice sends: bob (first page) and zed (last page) get it live.
    let ack = alice
        .ask(
            json!({"action": "sendMessage", "conversationId": conversation, "content": "welcome, all 1,000"}),
            "ack",
        )
        .await;
    let id = ack["messageId"].as_str().expect("an id").to_owned();
    for (who, client) in [("bob", &mut bob), ("zed", &mut zed)] {
        let got = client
            .expect("the message", |v| {
                v["type"] == "message" && v["messageId"] == id.as_str()
            })
            .await;
        assert_eq!(got["content"], "welcome, all 1,000", "{who}");
    }
    // An outsider is refused; a member offline has it unread (over HTTP, as a phone would ask).
    let mut mallory = Client::connect(&running, "mallory", "Mallory").await;
    let refused = mallory
        .ask(
            json!({"action": "sendMessage", "conversationId": conversation, "content": "let me in"}),
            "error",
        )
        .await;
    assert_eq!(refused["code"], "not_a_member");
    let offline = token(&running, "member-0500", "Member 500").await;
    let http = reqwest::Client::new();
    let mut unread = Value::Null;
    for _ in 0..150 {
        unread = http
            .get(format!("http://{}/api/unread", running.http))
            .bearer_auth(&offline)
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("JSON");
        if unread["total"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        unread["conversations"],
        json!([{"conversationId": conversation, "unread": 1}])
    );

    // bob and zed read it: alice's history counts two readers, not a receipt each.
    for client in [&mut bob, &mut zed] {
        client
            .send(json!({"action": "markRead", "conversationId": conversation, "messageId": id}))
            .await;
    }
    // Live, a count now and then rather than a frame per reader.
    let counted = alice
        .expect("a read-by count", |v| {
            v["type"] == "readBy" && v["messageId"] == id.as_str()
        })
        .await;
    assert!(
        counted["readBy"].as_u64().is_some_and(|n| (1..=2).contains(&n)),
        "{counted}"
    );
    let mut read_by = Value::Null;
    for _ in 0..150 {
        let history = alice
            .ask(
                json!({"action": "history", "conversationId": conversation, "limit": 1}),
                "history",
            )
            .await;
        read_by = history["messages"][0]["readBy"].clone();
        if read_by == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(read_by, 2);
    let listed = bob.ask(json!({"action": "listConversations"}), "conversations").await;
    let entry = &listed["conversations"][0];
    assert_eq!(
        (entry["memberCount"].as_u64(), entry["unread"].as_i64()),
        (Some(MEMBERS as u64), Some(0)),
        "{entry}"
    );

    // zed leaves; the count follows and zed is out.
    let left = zed
        .ask(
            json!({"action": "leaveConversation", "conversationId": conversation}),
            "conversation",
        )
        .await;
    assert_eq!(left["memberCount"], MEMBERS as u64 - 1, "{left}");
    let out = zed
        .ask(
            json!({"action": "sendMessage", "conversationId": conversation, "content": "bye?"}),
            "error",
        )
        .await;
    assert_eq!(out["code"], "not_a_member");

    for client in [alice, bob, zed, mallory] {
        client.close().await;
    }
    running.stop().await;
}
