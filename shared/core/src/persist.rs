//! persist-message: store a chat message once, however often it is delivered.

use relaychat_schema::ChatMessage;
use tracing::debug;

use crate::Error;
use crate::ports::{Inserted, MessageStore};

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
