use deliver_message::DeliverMessage;
use relaychat_core::ports::ConnectionDirectory;
use relaychat_schema::{ConnectionId, UserId};
use relaychat_testkit::{connections_api, dynamo_store, read_topic};

use crate::support::*;

#[tokio::test]
async fn online_members_get_frames_and_receipts_offline_ones_a_notification() {
    // GIVEN alice online, and bob with only a connection API Gateway has already dropped
    let store = dynamo_store().await;
    let topics = fresh_topics().await;
    let (registry, api) = connections_api().await;
    let (alice, bob) = (UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap());
    store
        .put_connection(&ConnectionId::parse("alice-1=").unwrap(), &alice, "Alice")
        .await
        .unwrap();
    let mut alice_socket = registry.register("alice-1=", "127.0.0.1", "test");
    store
        .put_connection(&ConnectionId::parse("bob-stale=").unwrap(), &bob, "Bob")
        .await
        .unwrap();
    let function = DeliverMessage {
        members: store.clone(),
        directory: store.clone(),
        poster: api,
        publisher: publisher(),
        dead_letters: dead_letters("deliver-message").await,
        topics: topics.clone(),
    };
    // WHEN the sample (alice → bob, bob → alice, carol → group) is delivered
    let response = function.invoke(&sample("deliver-message.json")).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    // THEN alice got bob's and carol's messages, each acknowledged as DELIVERED
    let frames = frames(&mut alice_socket);
    let ids: Vec<&str> = frames.iter().map(|f| f["messageId"].as_str().unwrap()).collect();
    assert_eq!(frames.len(), 2);
    assert!(ids.contains(&M2) && ids.contains(&M3), "{ids:?}");
    assert!(
        frames
            .iter()
            .all(|f| f["type"] == "message" && f["senderName"].is_string())
    );
    let delivered = read_topic(&topics.message_status_events, 2, WAIT);
    assert_eq!(delivered.len(), 2);
    assert!(
        delivered
            .iter()
            .all(|r| r.key.as_deref() == Some(&b"alice"[..]) && r.json()["status"] == "DELIVERED")
    );
    // AND bob, unreachable, gets two push notifications, and his dead connection is gone
    let pushes = read_topic(&topics.notifications, 2, WAIT);
    assert_eq!(pushes.len(), 2);
    let notified: Vec<String> = pushes
        .iter()
        .map(|r| r.json()["notificationId"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        notified.contains(&format!("msg:{M1}")) && notified.contains(&format!("msg:{M3}")),
        "{notified:?}"
    );
    assert!(pushes.iter().all(|r| r.json()["userId"] == "bob"));
    assert!(store.connections_of(&bob).await.unwrap().is_empty());
}
