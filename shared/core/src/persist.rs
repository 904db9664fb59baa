//! persist-message: store a chat message once, however often it is delivered.

use relaychat_schema::{ChatEvent, ChatMessage, MessageChange};
use tracing::debug;

use crate::Error;
use crate::ports::{ChangeOutcome, Inserted, MessageStore};

/// Stores what a `chat-messages` record holds: a message, or a change to a stored one.
pub async fn persist_event(store: &impl MessageStore, event: &ChatEvent) -> Result<(), Error> {
    match event {
        // The rest of a large group's fan-out: stored when it was first read.
        event if event.fanout_after().is_some() => Ok(()),
        ChatEvent::Message(m) => persist_message(store, m).await.map(|_| ()),
        ChatEvent::Change(c) => persist_change(store, c).await,
    }
}

/// Applies an edit or a deletion. The WebSocket and HTTP fronts publish one only for a stored
/// message, which its partition stored before: a missing one is an error to look into, not a
/// record to retry for ever (it is dead-lettered with the reason).
pub async fn persist_change(store: &impl MessageStore, change: &MessageChange) -> Result<(), Error> {
    match store.apply_change(change).await? {
        ChangeOutcome::Applied => Ok(()),
        ChangeOutcome::Superseded => {
            debug!(message_id = %change.message_id, "a later edit or the deletion is stored already");
            Ok(())
        }
        ChangeOutcome::Missing => Err(Error::rejected(
            "change message",
            format!(
                "message {} is not stored in {}",
                change.message_id, change.conversation_id
            ),
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persisted {
    Stored,
    AlreadyStored,
}

/// Stores the message with the recipients' unread increments and the conversation's last message
/// (one atomic write that a replay cannot repeat). A replay moves the last message forward again
/// on its own, which heals a conversation stored by an earlier version in two steps. A recipient
/// who had read past the message before it arrived is not given an unread and gets its READ
/// receipt in the same atomic write: reading is by position, whatever the order of arrival.
pub async fn persist_message(store: &impl MessageStore, message: &ChatMessage) -> Result<Persisted, Error> {
    let outcome = match store.insert_message(message).await? {
        Inserted::Stored { already_read_by } => {
            if !already_read_by.is_empty() {
                debug!(message_id = %message.message_id, readers = ?already_read_by, "arrived behind these readers' cursors: read");
            }
            Persisted::Stored
        }
        Inserted::Repeat => {
            debug!(message_id = %message.message_id, "already stored; replay changes nothing");
            store.set_last_message(message).await?;
            Persisted::AlreadyStored
        }
    };
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Memory, sample_message};
    use crate::ports::ConversationStore;
    use relaychat_schema::{Change, MessageContent};

    #[tokio::test]
    async fn a_replayed_message_changes_nothing() {
        // GIVEN a message to bob and carol
        let mem = Memory::default();
        let m = sample_message("c1", "alice", &["bob", "carol"]);
        // WHEN it is persisted twice
        assert_eq!(persist_message(&mem, &m).await.unwrap(), Persisted::Stored);
        assert_eq!(persist_message(&mem, &m).await.unwrap(), Persisted::AlreadyStored);
        // THEN it is stored once and each recipient has one unread message
        assert_eq!(mem.messages_in("c1").len(), 1);
        assert_eq!(mem.unread("bob", "c1"), 1);
        assert_eq!(mem.unread("carol", "c1"), 1);
        assert_eq!(mem.unread("alice", "c1"), 0);
        assert_eq!(mem.last_message("c1"), Some(m.message_id));
    }

    fn change(m: &ChatMessage, change: Change, secs: i64) -> ChatEvent {
        ChatEvent::Change(crate::memory::sample_change(m, change, secs))
    }

    fn edited(text: &str) -> Change {
        Change::Edited {
            content: MessageContent::parse(text).unwrap(),
        }
    }

    #[tokio::test]
    async fn the_latest_edit_wins_a_deletion_ends_all_and_a_change_to_nothing_is_refused() {
        // GIVEN a stored message
        let mem = Memory::default();
        let m = sample_message("c1", "alice", &["bob"]);
        persist_event(&mem, &ChatEvent::Message(m.clone())).await.unwrap();
        // WHEN it is edited twice, the later edit arriving first, then each replayed
        let (first, second) = (change(&m, edited("first"), 1), change(&m, edited("second"), 2));
        for event in [&second, &first, &second, &first] {
            persist_event(&mem, event).await.unwrap();
        }
        // THEN the later edit is the text
        let view = mem.message(&m.conversation_id, m.message_id).await.unwrap().unwrap();
        assert_eq!(view.content, "second");
        assert_eq!(view.edited_at, Some(m.sent_at + chrono::Duration::seconds(2)));
        // WHEN it is deleted, then an edit from before the deletion arrives
        persist_event(&mem, &change(&m, Change::Deleted, 3)).await.unwrap();
        persist_event(&mem, &change(&m, edited("late"), 2)).await.unwrap();
        // THEN it is a tombstone, in history too
        let (history, _) = mem.history(&m.conversation_id, None, 10).await.unwrap();
        assert_eq!(
            (history[0].content.as_str(), history[0].deleted_at),
            ("", Some(m.sent_at + chrono::Duration::seconds(3)))
        );
        // AND a change to a message never stored is a permanent error (dead-lettered)
        let stranger = sample_message("c1", "alice", &["bob"]);
        let err = persist_event(&mem, &change(&stranger, Change::Deleted, 1))
            .await
            .unwrap_err();
        assert!(!err.is_retryable(), "{err}");
    }

    #[tokio::test]
    async fn last_message_never_moves_back() {
        let mem = Memory::default();
        let older = sample_message("c1", "alice", &["bob"]);
        let newer = sample_message("c1", "bob", &["alice"]);
        persist_message(&mem, &newer).await.unwrap();
        persist_message(&mem, &older).await.unwrap();
        assert_eq!(mem.last_message("c1"), Some(newer.message_id));
    }
}
