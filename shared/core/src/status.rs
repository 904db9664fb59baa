//! update-status: receipts move forward only (SENT → DELIVERED → READ); each move is told to the
//! message's sender.

use relaychat_schema::frames::ServerFrame;
use relaychat_schema::{DeliveryStatus, MessageId, MessageStatusUpdate, SchemaError, UserId};
use tracing::debug;

use crate::Error;
use crate::fanout::push_to_user;
use crate::ports::{ConnectionDirectory, FramePusher, MessageStore, ReadState, Receipts};

/// What changed: the receipts that moved forward.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusChange {
    pub advanced: Vec<MessageId>,
}

/// `store` holds messages, read state, receipts and connections; `pusher` reaches the sender.
pub async fn apply_status_update<S, F>(
    store: &S,
    pusher: &F,
    update: &MessageStatusUpdate,
) -> Result<StatusChange, Error>
where
    S: MessageStore + ReadState + Receipts + ConnectionDirectory,
    F: FramePusher,
{
    match update.status {
        DeliveryStatus::Delivered => {
            let sender = update.sender_id.as_ref().ok_or_else(|| {
                Error::Invalid(SchemaError::InvalidField {
                    field: "senderId",
                    reason: "required for DELIVERED".into(),
                })
            })?;
            let mut change = StatusChange::default();
            if advance_and_tell(store, pusher, update, update.message_id, sender).await? {
                change.advanced.push(update.message_id);
            }
            Ok(change)
        }
        DeliveryStatus::Read => mark_read_up_to(store, pusher, update).await,
        DeliveryStatus::Sent => Err(Error::Invalid(SchemaError::InvalidField {
            field: "status",
            reason: "SENT is where receipts start, not an update".into(),
        })),
    }
}

/// READ covers every message from others after the reader's cursor up to `messageId`. Receipts are
/// moved before the cursor, so a crash in between is healed by the redelivery.
async fn mark_read_up_to<S, F>(store: &S, pusher: &F, update: &MessageStatusUpdate) -> Result<StatusChange, Error>
where
    S: MessageStore + ReadState + Receipts + ConnectionDirectory,
    F: FramePusher,
{
    let reader = &update.user_id;
    let cursor = store.read_cursor(reader, &update.conversation_id).await?;
    if cursor.is_some_and(|c| c >= update.message_id) {
        debug!(%reader, "already read up to here");
        return Ok(StatusChange::default());
    }
    let mut change = StatusChange::default();
    for (message, sender) in store
        .messages_between(&update.conversation_id, cursor, update.message_id)
        .await?
    {
        if &sender != reader && advance_and_tell(store, pusher, update, message, &sender).await? {
            change.advanced.push(message);
        }
    }
    store
        .advance_read_cursor(reader, &update.conversation_id, update.message_id)
        .await?;
    Ok(change)
}

async fn advance_and_tell<S, F>(
    store: &S,
    pusher: &F,
    update: &MessageStatusUpdate,
    message: MessageId,
    sender: &UserId,
) -> Result<bool, Error>
where
    S: Receipts + ConnectionDirectory,
    F: FramePusher,
{
    let moved = store
        .advance_receipt(
            message,
            &update.conversation_id,
            &update.user_id,
            update.status,
            update.at,
        )
        .await?;
    if moved {
        let frame = ServerFrame::Status {
            message_id: message,
            conversation_id: &update.conversation_id,
            user_id: &update.user_id,
            status: update.status,
            at: update.at,
        };
        push_to_user(store, pusher, sender, &frame.to_bytes()).await?;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Memory, sample_message, status_update};
    use crate::persist::persist_message;

    #[tokio::test]
    async fn receipts_only_move_forward_and_the_sender_hears_each_move_once() {
        // GIVEN alice online, and her message to bob stored
        let mem = Memory::default();
        mem.connect("alice", "conn-alice");
        let m = sample_message("c1", "alice", &["bob"]);
        persist_message(&mem, &m).await.unwrap();
        // WHEN bob reads it, then a late DELIVERED arrives, then the READ is replayed
        let read = status_update(&m, "bob", DeliveryStatus::Read);
        let delivered = status_update(&m, "bob", DeliveryStatus::Delivered);
        assert_eq!(
            apply_status_update(&mem, &mem, &read).await.unwrap().advanced,
            vec![m.message_id]
        );
        assert!(
            apply_status_update(&mem, &mem, &delivered)
                .await
                .unwrap()
                .advanced
                .is_empty()
        );
        assert!(
            apply_status_update(&mem, &mem, &read)
                .await
                .unwrap()
                .advanced
                .is_empty()
        );
        // THEN the receipt is READ, alice got exactly one status frame, and bob has nothing unread
        assert_eq!(mem.receipt(m.message_id, "bob"), Some(DeliveryStatus::Read));
        let frames = mem.frames_to("conn-alice");
        assert_eq!(frames.len(), 1);
        assert_eq!(
            (frames[0]["type"].as_str(), frames[0]["status"].as_str()),
            (Some("status"), Some("READ"))
        );
        assert_eq!(mem.unread("bob", "c1"), 0);
    }

    #[tokio::test]
    async fn read_covers_everything_up_to_the_message_but_not_the_readers_own() {
        let mem = Memory::default();
        let m1 = sample_message("c1", "alice", &["bob"]);
        let own = sample_message("c1", "bob", &["alice"]);
        let m2 = sample_message("c1", "alice", &["bob"]);
        let m3 = sample_message("c1", "alice", &["bob"]);
        for m in [&m1, &own, &m2, &m3] {
            persist_message(&mem, m).await.unwrap();
        }
        assert_eq!(mem.unread("bob", "c1"), 3);
        let change = apply_status_update(&mem, &mem, &status_update(&m2, "bob", DeliveryStatus::Read))
            .await
            .unwrap();
        assert_eq!(change.advanced, vec![m1.message_id, m2.message_id]);
        assert_eq!(mem.receipt(own.message_id, "bob"), None);
        assert_eq!(mem.receipt(m3.message_id, "bob"), None);
        assert_eq!(mem.unread("bob", "c1"), 1, "m3 is still unread");
    }

    #[tokio::test]
    async fn delivered_without_a_sender_is_a_permanent_error() {
        let mem = Memory::default();
        let m = sample_message("c1", "alice", &["bob"]);
        let mut update = status_update(&m, "bob", DeliveryStatus::Delivered);
        update.sender_id = None;
        let err = apply_status_update(&mem, &mem, &update).await.unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("senderId"), "{err}");
    }
}
