//! Replies never exceed what API Gateway can send (128 KB): a history of long messages comes in
//! pages, through the real gateway, which refuses to send anything larger.

use std::time::Duration;

use serde_json::json;

use crate::client::{Client, start_runtime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_of_long_messages_arrives_in_pages_that_fit() {
    let (running, _topics) = start_runtime().await;
    let mut alice = Client::connect(&running, "alice", "Alice").await;
    let conversation = alice.create_conversation(&["bob"]).await;
    // 40 messages of 4,000 characters: about 160 KB of history, over one message's 128 KB.
    let total = 40;
    for i in 0..total {
        let content = format!("{i:04}").repeat(1_000);
        let reply = alice
            .ask(
                json!({"action": "sendMessage", "conversationId": conversation, "content": content}),
                "ack",
            )
            .await;
        if reply["code"] == "rate_limited" {
            panic!("sent faster than the limit: {reply}");
        }
        assert_eq!(reply["type"], "ack", "{reply}");
        // Stay under the per-connection send budget (10 a second).
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    // Wait until persist-message stored them all, then page through.
    let mut pages = Vec::new();
    for _ in 0..100 {
        pages.clear();
        let mut before: Option<String> = None;
        loop {
            let mut ask = json!({"action": "history", "conversationId": conversation, "limit": 100});
            if let Some(b) = &before {
                ask["before"] = json!(b);
            }
            let page = alice.ask(ask, "history").await;
            assert_eq!(page["type"], "history", "{page}");
            assert!(page.to_string().len() <= 128 * 1024);
            before = page["nextBefore"].as_str().map(str::to_owned);
            pages.push(page);
            if before.is_none() {
                break;
            }
        }
        let count: usize = pages.iter().map(|p| p["messages"].as_array().unwrap().len()).sum();
        if count == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let count: usize = pages.iter().map(|p| p["messages"].as_array().unwrap().len()).sum();
    assert_eq!(count, total, "every message, once");
    assert!(pages.len() >= 2, "more than one page: {}", pages.len());
    running.stop().await;
}
