//! The values on relaychat's Kafka topics (docs/architecture.md, "Topics"). JSON, camelCase, with a
//! `schemaVersion`; unknown fields are ignored, a missing required field is an error naming it.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{
    ClientMessageId, ConversationId, DisplayName, MessageContent, MessageId, SchemaError, Title, TopicKind, UserId,
};

/// The version this build writes, and the newest it reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Most members a conversation may have. Creating one (the conversation and a membership per
/// member) is one DynamoDB transaction, which takes at most 100 items.
pub const MAX_MEMBERS: usize = 99;

/// Implemented by every topic value: which topic it goes to and under which key (so a producer
/// cannot pick the wrong ones), parse with the version check, write as JSON.
pub trait TopicEvent: Serialize + DeserializeOwned {
    /// The topic it is published to.
    const TOPIC: TopicKind;

    fn schema_version(&self) -> u32;

    /// The record key: what keeps related events in order on one partition.
    fn key(&self) -> &str;

    /// The message it is about, if any (for logs and traces).
    fn message_id(&self) -> Option<MessageId> {
        None
    }

    /// The conversation it is about, if any (for logs and traces).
    fn conversation_id(&self) -> Option<&ConversationId> {
        None
    }

    fn from_json(bytes: &[u8]) -> Result<Self, SchemaError> {
        let event: Self = serde_json::from_slice(bytes)?;
        if event.schema_version() > SCHEMA_VERSION {
            return Err(SchemaError::UnsupportedVersion {
                found: event.schema_version(),
                supported: SCHEMA_VERSION,
            });
        }
        Ok(event)
    }

    fn to_json(&self) -> Vec<u8> {
        // Serialising these plain structs cannot fail: no maps with non-string keys, no custom impls that error.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl TopicEvent for ChatMessage {
    const TOPIC: TopicKind = TopicKind::ChatMessages;
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn key(&self) -> &str {
        self.conversation_id.as_str()
    }
    fn message_id(&self) -> Option<MessageId> {
        Some(self.message_id)
    }
    fn conversation_id(&self) -> Option<&ConversationId> {
        Some(&self.conversation_id)
    }
}

impl TopicEvent for MessageStatusUpdate {
    const TOPIC: TopicKind = TopicKind::MessageStatusEvents;
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    /// The reader: one reader's receipts stay in order.
    fn key(&self) -> &str {
        self.user_id.as_str()
    }
    fn message_id(&self) -> Option<MessageId> {
        Some(self.message_id)
    }
    fn conversation_id(&self) -> Option<&ConversationId> {
        Some(&self.conversation_id)
    }
}

impl TopicEvent for TypingIndicator {
    const TOPIC: TopicKind = TopicKind::TypingEvents;
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn key(&self) -> &str {
        self.conversation_id.as_str()
    }
    fn conversation_id(&self) -> Option<&ConversationId> {
        Some(&self.conversation_id)
    }
}

impl TopicEvent for Notification {
    const TOPIC: TopicKind = TopicKind::Notifications;
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn key(&self) -> &str {
        self.user_id.as_str()
    }
    fn message_id(&self) -> Option<MessageId> {
        self.message_id
    }
    fn conversation_id(&self) -> Option<&ConversationId> {
        self.conversation_id.as_ref()
    }
}

impl TopicEvent for AnalyticsEvent {
    const TOPIC: TopicKind = TopicKind::AnalyticsEvents;
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn key(&self) -> &str {
        self.user_id.as_str()
    }
    fn conversation_id(&self) -> Option<&ConversationId> {
        self.conversation_id.as_ref()
    }
}

/// `chat-messages`, keyed by conversationId. Carries the recipients as they were when it was
/// sent (membership was checked then), so consumers need no conversation lookup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub schema_version: u32,
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub sender_id: UserId,
    pub sender_name: DisplayName,
    pub content: MessageContent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<ClientMessageId>,
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub sent_at: DateTime<Utc>,
    pub recipients: Vec<UserId>,
}

/// Receipt statuses. They only move forward: SENT → DELIVERED → READ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DeliveryStatus {
    Sent,
    Delivered,
    Read,
}

impl DeliveryStatus {
    /// A number that grows with the status, for conditional writes (`rank < :new`).
    pub fn rank(self) -> u8 {
        match self {
            Self::Sent => 1,
            Self::Delivered => 2,
            Self::Read => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "SENT",
            Self::Delivered => "DELIVERED",
            Self::Read => "READ",
        }
    }
}

/// `message-status-events`, keyed by the recipient's userId so one reader's receipts stay in order.
/// DELIVERED names one message; READ means "read up to and including `messageId`".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStatusUpdate {
    pub schema_version: u32,
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    /// The recipient whose status changed.
    pub user_id: UserId,
    /// The message's sender, when the producer knows it (always for DELIVERED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<UserId>,
    pub status: DeliveryStatus,
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub at: DateTime<Utc>,
}

/// `typing-events`, keyed by conversationId; short-lived, never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingIndicator {
    pub schema_version: u32,
    pub conversation_id: ConversationId,
    pub user_id: UserId,
    pub is_typing: bool,
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub at: DateTime<Utc>,
    pub recipients: Vec<UserId>,
}

/// `notifications`, keyed by userId: a push for a user with no live connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub schema_version: u32,
    /// Deterministic (`msg:<messageId>` for messages) so a replay is recognised as the same push.
    pub notification_id: String,
    pub user_id: UserId,
    pub title: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<ConversationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub created_at: DateTime<Utc>,
}

impl Notification {
    /// The push a recipient gets for a message that reached none of their connections.
    pub fn for_message(message: &ChatMessage, recipient: &UserId, conversation_title: Option<&Title>) -> Self {
        let title = match conversation_title {
            Some(t) => format!("{} in {}", message.sender_name, t),
            None => message.sender_name.to_string(),
        };
        Self {
            schema_version: SCHEMA_VERSION,
            notification_id: format!("msg:{}", message.message_id),
            user_id: recipient.clone(),
            title,
            body: message.content.preview(140),
            conversation_id: Some(message.conversation_id.clone()),
            message_id: Some(message.message_id),
            created_at: Utc::now(),
        }
    }
}

/// What an analytics event counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AnalyticsKind {
    Connected,
    Disconnected,
    ConversationCreated,
    MessageSent,
    MessageRead,
}

impl AnalyticsKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::ConversationCreated => "conversationCreated",
            Self::MessageSent => "messageSent",
            Self::MessageRead => "messageRead",
        }
    }
}

/// `analytics-events`, keyed by userId (or sessionId).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsEvent {
    pub schema_version: u32,
    pub event_id: MessageId,
    pub kind: AnalyticsKind,
    pub user_id: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<ConversationId>,
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub at: DateTime<Utc>,
}

/// What happened to one of a user's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ConnectionChange {
    Connected,
    Disconnected,
}

/// `presence-events`, keyed by userId: a connection of the user came or went. update-presence
/// works out from the user's live connections whether that changed their presence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceChange {
    pub schema_version: u32,
    pub user_id: UserId,
    pub connection_id: crate::ConnectionId,
    pub change: ConnectionChange,
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub at: DateTime<Utc>,
}

impl TopicEvent for PresenceChange {
    const TOPIC: TopicKind = TopicKind::PresenceEvents;
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn key(&self) -> &str {
        self.user_id.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_json() -> serde_json::Value {
        serde_json::json!({
            "schemaVersion": 1,
            "messageId": "01JDQ3ZK6M0000000000000000",
            "conversationId": "c1",
            "senderId": "alice",
            "senderName": "Alice",
            "content": "hi",
            "sentAt": "2026-11-25T10:00:00Z",
            "recipients": ["bob"],
            "someFutureField": {"ignored": true}
        })
    }

    #[test]
    fn unknown_fields_are_ignored_and_round_trip_holds() {
        let m = ChatMessage::from_json(sample_json().to_string().as_bytes()).unwrap();
        assert_eq!(m.sender_id.as_str(), "alice");
        let again = ChatMessage::from_json(&m.to_json()).unwrap();
        assert_eq!(m, again);
    }

    #[test]
    fn a_missing_field_is_named() {
        let mut v = sample_json();
        v.as_object_mut().unwrap().remove("conversationId");
        let err = ChatMessage::from_json(v.to_string().as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `conversationId`"), "{err}");
    }

    #[test]
    fn limits_hold_inside_events() {
        let mut v = sample_json();
        v["content"] = serde_json::json!("x".repeat(4_001));
        let err = ChatMessage::from_json(v.to_string().as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("content"), "{err}");
    }

    #[test]
    fn a_newer_schema_version_is_refused() {
        let mut v = sample_json();
        v["schemaVersion"] = serde_json::json!(2);
        let err = ChatMessage::from_json(v.to_string().as_bytes()).unwrap_err();
        assert!(matches!(err, SchemaError::UnsupportedVersion { found: 2, .. }));
    }

    #[test]
    fn statuses_rank_forward() {
        assert!(DeliveryStatus::Sent.rank() < DeliveryStatus::Delivered.rank());
        assert!(DeliveryStatus::Delivered.rank() < DeliveryStatus::Read.rank());
        assert_eq!(
            serde_json::to_string(&DeliveryStatus::Delivered).unwrap(),
            "\"DELIVERED\""
        );
    }
}
