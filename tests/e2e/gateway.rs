//! The gateway's edges: refused connects, API Gateway's size limits, route selection and errors.

use relaychat_testkit::unique;
use serde_json::json;
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::client::{Client, start_runtime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_limits_behave_like_api_gateway() {
    let (running, _topics) = start_runtime().await;

    // A bad token is refused at $connect with 401: no upgrade.
    for url in [
        format!("ws://{}/local?token=forged", running.ws),
        format!("ws://{}/local", running.ws),
    ] {
        match tokio_tungstenite::connect_async(url).await {
            Err(WsError::Http(response)) => assert_eq!(response.status(), 401),
            other => panic!("expected a 401, got {other:?}"),
        }
    }

    let user = unique("carol");
    let mut carol = Client::connect(&running, &user, "Carol").await;
    // Unknown action, bad JSON, not a member: error frames; the connection stays open.
    let unknown = carol.ask(json!({"action": "dance"}), "error").await;
    assert_eq!(unknown["code"], "unknown_action");
    carol.send(json!("not an object")).await;
    assert_eq!(
        carol.expect("error", |v| v["type"] == "error").await["code"],
        "invalid_json"
    );
    let (dave, erin) = (unique("dave"), unique("erin"));
    let mut dave_client = Client::connect(&running, &dave, "Dave").await;
    let theirs = dave_client.create_conversation(&[&erin]).await;
    let outsider = carol
        .ask(json!({"action": "history", "conversationId": theirs}), "history")
        .await;
    assert_eq!(outsider["code"], "not_a_member");
    let unknown = carol
        .ask(
            json!({"action": "history", "conversationId": "no-such-conversation"}),
            "history",
        )
        .await;
    assert_eq!(unknown["code"], "not_found");
    let list = carol.ask(json!({"action": "listConversations"}), "conversations").await;
    assert_eq!(list["conversations"], json!([]));

    // A frame over 32 KB closes the connection with 1009, as API Gateway does.
    carol
        .send(json!({"action": "sendMessage", "conversationId": "c", "content": "x".repeat(40 * 1024)}))
        .await;
    assert_eq!(carol.closed_with().await, Some(1009));

    // The @connections API answers 410 GoneException for a connection that is gone.
    let gone = reqwest::Client::new()
        .post(format!("http://{}/local/@connections/{}", running.ws, "bm9ib2R5"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 410);
    assert_eq!(gone.headers()["x-amzn-ErrorType"], "GoneException");
    running.stop().await;
}
