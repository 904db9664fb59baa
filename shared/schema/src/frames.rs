//! Server → client WebSocket frames (docs/protocol.md) that the Kafka-side functions push through
//! the `@connections` API.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Change, ChatMessage, ConversationId, DeliveryStatus, MessageChange, MessageId, UserId};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerFrame<'a> {
    #[serde(rename_all = "camelCase")]
    Message {
        message_id: MessageId,
        conversation_id: &'a ConversationId,
        sender_id: &'a UserId,
        sender_name: &'a str,
        content: &'a str,
        sent_at: DateTime<Utc>,
    },
    /// DELIVERED is about `message_id` alone; READ (`upTo: true`) covers every message of the
    /// conversation up to and including `message_id`.
    #[serde(rename_all = "camelCase")]
    Status {
        message_id: MessageId,
        conversation_id: &'a ConversationId,
        user_id: &'a UserId,
        status: DeliveryStatus,
        at: DateTime<Utc>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        up_to: bool,
    },
    #[serde(rename_all = "camelCase")]
    Typing {
        conversation_id: &'a ConversationId,
        user_id: &'a UserId,
        is_typing: bool,
    },
    /// The sender edited a message: its text is now `content`.
    #[serde(rename_all = "camelCase")]
    MessageEdited {
        message_id: MessageId,
        conversation_id: &'a ConversationId,
        sender_id: &'a UserId,
        content: &'a str,
        edited_at: DateTime<Utc>,
    },
    /// The sender deleted a message: show a tombstone in its place.
    #[serde(rename_all = "camelCase")]
    MessageDeleted {
        message_id: MessageId,
        conversation_id: &'a ConversationId,
        sender_id: &'a UserId,
        deleted_at: DateTime<Utc>,
    },
    /// In a large group: how many other members have read up to your message `messageId` (sent
    /// now and then as they read, not once per reader).
    #[serde(rename_all = "camelCase")]
    ReadBy {
        conversation_id: &'a ConversationId,
        message_id: MessageId,
        read_by: u64,
    },
    /// A user who shares a conversation with you came online or went offline.
    #[serde(rename_all = "camelCase")]
    Presence {
        user_id: &'a UserId,
        status: crate::protocol::PresenceStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        last_seen: Option<DateTime<Utc>>,
    },
    /// A conversation you are (or were, until this change) a member of was created or changed
    /// (`change`, by `by`, maybe you on another device): its members and title now.
    #[serde(rename_all = "camelCase")]
    Conversation {
        conversation_id: &'a ConversationId,
        /// Every member; none in a large group (see `memberCount`).
        members: &'a [UserId],
        title: Option<&'a crate::Title>,
        member_count: usize,
        change: ConversationChange,
        by: &'a UserId,
        /// With `created` only.
        #[serde(skip_serializing_if = "Option::is_none")]
        created_by: Option<&'a UserId>,
    },
}

/// What happened to a conversation (`conversation` frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ConversationChange {
    Created,
    Renamed,
    MembersAdded,
    MemberRemoved,
    Left,
}

impl<'a> ServerFrame<'a> {
    pub fn message(m: &'a ChatMessage) -> Self {
        Self::Message {
            message_id: m.message_id,
            conversation_id: &m.conversation_id,
            sender_id: &m.sender_id,
            sender_name: m.sender_name.as_str(),
            content: m.content.as_str(),
            sent_at: m.sent_at,
        }
    }

    /// The frame telling members of a change to a message.
    pub fn change(c: &'a MessageChange) -> Self {
        match &c.change {
            Change::Edited { content } => Self::MessageEdited {
                message_id: c.message_id,
                conversation_id: &c.conversation_id,
                sender_id: &c.sender_id,
                content: content.as_str(),
                edited_at: c.changed_at,
            },
            Change::Deleted => Self::MessageDeleted {
                message_id: c.message_id,
                conversation_id: &c.conversation_id,
                sender_id: &c.sender_id,
                deleted_at: c.changed_at,
            },
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Plain data with string keys: serialisation cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_frame_matches_the_protocol() {
        let conv = ConversationId::parse("c1").unwrap();
        let user = UserId::parse("bob").unwrap();
        let id = MessageId::parse("01JDQ3ZK6M0000000000000000").unwrap();
        let at = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let frame = ServerFrame::Status {
            message_id: id,
            conversation_id: &conv,
            user_id: &user,
            status: DeliveryStatus::Read,
            at,
            up_to: true,
        };
        let v: serde_json::Value = serde_json::from_slice(&frame.to_bytes()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"status","messageId":"01JDQ3ZK6M0000000000000000","conversationId":"c1",
                "userId":"bob","status":"READ","at":"2026-11-25T10:00:00Z","upTo":true})
        );
    }
}
