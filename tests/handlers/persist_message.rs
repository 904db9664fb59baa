use persist_message::PersistMessage;
use relaychat_adapters::kafka::{DLQ_REASON_HEADER, DLQ_SOURCE_HEADER};
use relaychat_core::ports::MessageStore;
use relaychat_schema::{ConversationId, MessageId};
use relaychat_testkit::{dynamo_store, read_topic};

use crate::support::*;

#[tokio::test]
async fn the_sample_is_stored_once_however_often_it_is_delivered() {
    let store = dynamo_store().await;
    let dlq = dead_letters("persist-message").await;
    let function = PersistMessage::new(store.clone(), dlq.clone());
    let event = sample("persist-message.json");
    for _ in 0..2 {
        let response = function.invoke(&event).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    let direct = ConversationId::parse(DIRECT).unwrap();
    let stored = store
        .messages_between(&direct, None, M3.parse::<MessageId>().unwrap(), 100)
        .await
        .unwrap();
    let ids: Vec<String> = stored.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(ids, vec![M1, M2]);
    assert_eq!(
        (
            unread(&store, "bob", DIRECT).await,
            unread(&store, "alice", DIRECT).await
        ),
        (1, 1)
    );
    assert_eq!(
        (
            unread(&store, "alice", GROUP).await,
            unread(&store, "bob", GROUP).await,
            unread(&store, "carol", GROUP).await
        ),
        (1, 1, 0)
    );
    assert!(read_topic(dlq.topic(), 0, std::time::Duration::from_secs(1)).is_empty());
}

#[tokio::test]
async fn malformed_records_are_dead_lettered_with_their_reason_and_the_rest_stored() {
    let store = dynamo_store().await;
    let dlq = dead_letters("persist-message").await;
    let function = PersistMessage::new(store.clone(), dlq.clone());
    let response = function.invoke(&sample("persist-message-malformed.json")).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "a malformed record never blocks its partition"
    );
    let dead = read_topic(dlq.topic(), 2, WAIT);
    assert_eq!(dead.len(), 2);
    let reason = |i: usize| String::from_utf8(dead[i].header(DLQ_REASON_HEADER).unwrap().to_vec()).unwrap();
    assert_eq!(dead[0].header(DLQ_SOURCE_HEADER), Some(&b"chat-messages-0@122"[..]));
    assert_eq!(
        reason(0),
        "record chat-messages-0@122: invalid payload: invalid JSON: messageId: invalid length at line 1 column 43"
    );
    assert_eq!(dead[1].header(DLQ_SOURCE_HEADER), Some(&b"chat-messages-0@123"[..]));
    assert!(reason(1).contains("missing field `senderId`"), "{}", reason(1));
    assert_eq!(unread(&store, "bob", DIRECT).await, 1, "the good record was stored");
}

#[tokio::test]
async fn the_changes_sample_edits_one_message_tombstones_another_and_dead_letters_a_stranger() {
    use relaychat_core::ports::ConversationStore;
    let store = dynamo_store().await;
    let dlq = dead_letters("persist-message").await;
    let function = PersistMessage::new(store.clone(), dlq.clone());
    assert!(
        function
            .invoke(&sample("persist-message.json"))
            .await
            .batch_item_failures
            .is_empty()
    );
    for _ in 0..2 {
        let response = function.invoke(&sample("persist-message-changes.json")).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "a change to nothing never blocks the partition"
        );
    }
    let direct = ConversationId::parse(DIRECT).unwrap();
    let (history, _) = store.history(&direct, None, 10).await.unwrap();
    let by_id = |id: &str| history.iter().find(|m| m.message_id.to_string() == id).unwrap();
    assert_eq!(
        (by_id(M1).content.as_str(), by_id(M1).edited_at.is_some()),
        ("Hi Bob! Lunch at one?", true)
    );
    assert_eq!((by_id(M2).content.as_str(), by_id(M2).deleted_at.is_some()), ("", true));
    let dead = read_topic(dlq.topic(), 2, WAIT);
    assert_eq!(dead.len(), 2, "dead-lettered on each delivery");
    let reason = String::from_utf8(dead[0].header(DLQ_REASON_HEADER).unwrap().to_vec()).unwrap();
    assert!(reason.contains("is not stored"), "{reason}");
    assert_eq!(dead[0].header(DLQ_SOURCE_HEADER), Some(&b"chat-messages-0@126"[..]));
}
