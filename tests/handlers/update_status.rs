use persist_message::PersistMessage;
use relaychat_core::memory::Memory;
use relaychat_testkit::{connections_api, dynamo_store};
use update_status::UpdateStatus;

use crate::support::*;

#[tokio::test]
async fn receipts_reach_the_sender_once_and_read_clears_unread() {
    // GIVEN the direct conversation's two messages stored, alice and bob online
    let store = dynamo_store().await;
    let seeded = PersistMessage::new(store.clone(), Memory::default())
        .invoke(&sample("persist-message.json"))
        .await;
    assert!(seeded.batch_item_failures.is_empty());
    let (registry, api) = connections_api().await;
    let mut alice = online(&store, &registry, "alice", "alice-1=").await;
    let mut bob = online(&store, &registry, "bob", "bob-1=").await;
    let function = UpdateStatus {
        store: store.clone(),
        directory: store.clone(),
        poster: api,
        publisher: publisher(),
        dead_letters: dead_letters("update-status").await,
        topics: fresh_topics().await,
        read_by: Default::default(),
    };
    assert_eq!(unread(&store, "bob", DIRECT).await, 1);
    // WHEN bob's DELIVERED and READ of M1 and alice's DELIVERED of M2 are applied, twice
    for _ in 0..2 {
        let response = function.invoke(&sample("update-status.json")).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    // THEN alice heard DELIVERED then READ (up to) for M1, once each: the replay found M1 read
    // already (a late DELIVERED after READ tells nothing)
    let to_alice = frames(&mut alice);
    let statuses: Vec<(&str, &str)> = to_alice
        .iter()
        .map(|f| (f["messageId"].as_str().unwrap(), f["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, vec![(M1, "DELIVERED"), (M1, "READ")]);
    assert!(to_alice.iter().all(|f| f["type"] == "status" && f["userId"] == "bob"));
    assert_eq!(to_alice[1]["upTo"], true);
    // AND bob heard DELIVERED for M2: status frames are at least once (a replayed DELIVERED tells
    // again, so a frame whose first push failed is not lost) and repeat only what was said
    let to_bob = frames(&mut bob);
    assert_eq!(to_bob.len(), 2, "{to_bob:?}");
    for frame in &to_bob {
        assert_eq!(
            (frame["messageId"].as_str(), frame["status"].as_str()),
            (Some(M2), Some("DELIVERED"))
        );
    }
    // AND bob has read everything in the conversation but his own message
    assert_eq!(unread(&store, "bob", DIRECT).await, 0);
}
