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

/// Most members a conversation may have.
pub const MAX_MEMBERS: usize = 10_000;

/// Most members of a small conversation: created in one DynamoDB transaction (at most 100 items)
/// with its members listed on it, and each message adding to every recipient's unread count in
/// one transaction. A group grown past this is a large group: members kept only as memberships,
/// unread counted from a per-conversation sequence, fan-out paged (docs/data-model.md, "Large groups").
pub const MAX_SMALL_MEMBERS: usize = 99;

/// Most members one `addMembers` adds (a request is at most 128 KB).
pub const MAX_ADD_MEMBERS: usize = 1_000;

fn is_false(b: &bool) -> bool {
    !*b
}

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

    /// When the message it carries was sent, if it carries one (how far behind a consumer is).
    fn sent_at(&self) -> Option<DateTime<Utc>> {
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
    fn sent_at(&self) -> Option<DateTime<Utc>> {
        Some(self.sent_at)
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
    /// The members when it was sent; empty in a large group (consumers page its memberships).
    pub recipients: Vec<UserId>,
    /// Sent to a large group (`MAX_SMALL_MEMBERS`): counted by sequence, delivered page by page.
    #[serde(default, skip_serializing_if = "is_false")]
    pub large_group: bool,
    /// deliver-message's continuation of a large group's fan-out: the members after this one are
    /// still to be told. Persisting and counting ignore such a record (the message is stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fanout_after: Option<UserId>,
}

/// What a sender did to a message they sent (`MessageChange`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "camelCase")]
pub enum Change {
    /// The text is now `content`.
    Edited { content: MessageContent },
    /// The message is a tombstone: its text is gone for everyone.
    Deleted,
}

/// `chat-messages`, keyed by conversationId like the message it changes, so it is persisted and
/// delivered after it: the sender edited or deleted a message already stored. It never has a
/// `sentAt` (a chat message always has): `ChatEvent` tells the two apart by that.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageChange {
    pub schema_version: u32,
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    /// The message's sender, who alone may change it.
    pub sender_id: UserId,
    #[serde(flatten)]
    pub change: Change,
    /// When it was changed: of two edits the later one wins, whatever order they arrive in.
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub changed_at: DateTime<Utc>,
    /// The members when it was changed (the sender too: their other devices show it); empty in
    /// a large group.
    pub recipients: Vec<UserId>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub large_group: bool,
    /// As `ChatMessage::fanout_after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fanout_after: Option<UserId>,
}

impl TopicEvent for MessageChange {
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

/// What a `chat-messages` record holds: a new message, or a change to one.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ChatEvent {
    Message(ChatMessage),
    Change(MessageChange),
}

impl ChatEvent {
    pub fn message_id(&self) -> MessageId {
        match self {
            Self::Message(m) => m.message_id,
            Self::Change(c) => c.message_id,
        }
    }

    pub fn conversation_id(&self) -> &ConversationId {
        match self {
            Self::Message(m) => &m.conversation_id,
            Self::Change(c) => &c.conversation_id,
        }
    }

    /// For a large group (its members paged, not listed).
    pub fn large_group(&self) -> bool {
        match self {
            Self::Message(m) => m.large_group,
            Self::Change(c) => c.large_group,
        }
    }

    /// Where a large group's fan-out goes on from, on a continuation record.
    pub fn fanout_after(&self) -> Option<&UserId> {
        match self {
            Self::Message(m) => m.fanout_after.as_ref(),
            Self::Change(c) => c.fanout_after.as_ref(),
        }
    }

    /// The same event, to be fanned out to the members after `last`.
    pub fn handed_on(&self, last: UserId) -> Self {
        match self {
            Self::Message(m) => Self::Message(ChatMessage {
                fanout_after: Some(last),
                ..m.clone()
            }),
            Self::Change(c) => Self::Change(MessageChange {
                fanout_after: Some(last),
                ..c.clone()
            }),
        }
    }
}

/// Reads either shape in one pass (messages are the hot path): a `change` field makes it a
/// change, and each shape's missing fields are named as serde names them.
impl<'de> Deserialize<'de> for ChatEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;

        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        enum Kind {
            Edited,
            Deleted,
        }

        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            schema_version: u32,
            message_id: MessageId,
            conversation_id: ConversationId,
            sender_id: UserId,
            #[serde(default)]
            sender_name: Option<DisplayName>,
            #[serde(default)]
            content: Option<MessageContent>,
            #[serde(default)]
            client_message_id: Option<ClientMessageId>,
            #[serde(default, deserialize_with = "crate::time::deserialize_optional")]
            sent_at: Option<DateTime<Utc>>,
            #[serde(default)]
            change: Option<Kind>,
            #[serde(default, deserialize_with = "crate::time::deserialize_optional")]
            changed_at: Option<DateTime<Utc>>,
            recipients: Vec<UserId>,
            #[serde(default)]
            large_group: bool,
            #[serde(default)]
            fanout_after: Option<UserId>,
        }

        fn required<T, E: serde::de::Error>(v: Option<T>, field: &'static str) -> Result<T, E> {
            v.ok_or_else(|| E::missing_field(field))
        }

        let w = Wire::deserialize(deserializer)?;
        let change = match w.change {
            None => {
                return Ok(Self::Message(ChatMessage {
                    schema_version: w.schema_version,
                    message_id: w.message_id,
                    conversation_id: w.conversation_id,
                    sender_id: w.sender_id,
                    sender_name: required(w.sender_name, "senderName")?,
                    content: required(w.content, "content")?,
                    client_message_id: w.client_message_id,
                    sent_at: required(w.sent_at, "sentAt")?,
                    recipients: w.recipients,
                    large_group: w.large_group,
                    fanout_after: w.fanout_after,
                }));
            }
            Some(Kind::Edited) => Change::Edited {
                content: required(w.content, "content")?,
            },
            Some(Kind::Deleted) => Change::Deleted,
        };
        if w.sent_at.is_some() {
            return Err(D::Error::custom("a change has no sentAt"));
        }
        Ok(Self::Change(MessageChange {
            schema_version: w.schema_version,
            message_id: w.message_id,
            conversation_id: w.conversation_id,
            sender_id: w.sender_id,
            change,
            changed_at: required(w.changed_at, "changedAt")?,
            recipients: w.recipients,
            large_group: w.large_group,
            fanout_after: w.fanout_after,
        }))
    }
}

impl TopicEvent for ChatEvent {
    const TOPIC: TopicKind = TopicKind::ChatMessages;
    fn schema_version(&self) -> u32 {
        match self {
            Self::Message(m) => m.schema_version,
            Self::Change(c) => c.schema_version,
        }
    }
    fn key(&self) -> &str {
        ChatEvent::conversation_id(self).as_str()
    }
    fn sent_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Message(m) => Some(m.sent_at),
            Self::Change(_) => None,
        }
    }
    fn message_id(&self) -> Option<MessageId> {
        Some(ChatEvent::message_id(self))
    }
    fn conversation_id(&self) -> Option<&ConversationId> {
        Some(ChatEvent::conversation_id(self))
    }
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
    /// READ in a large group: the reader's position moves, with no receipt per message.
    #[serde(default, skip_serializing_if = "is_false")]
    pub large_group: bool,
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
    fn a_chat_event_is_a_message_or_a_change_and_each_names_what_it_misses() {
        let ChatEvent::Message(m) = ChatEvent::from_json(sample_json().to_string().as_bytes()).unwrap() else {
            panic!("a message")
        };
        assert_eq!(m, ChatMessage::from_json(sample_json().to_string().as_bytes()).unwrap());
        let edit = MessageChange {
            schema_version: SCHEMA_VERSION,
            message_id: m.message_id,
            conversation_id: m.conversation_id.clone(),
            sender_id: m.sender_id.clone(),
            change: Change::Edited {
                content: MessageContent::parse("hi, all").unwrap(),
            },
            changed_at: m.sent_at,
            recipients: m.recipients.clone(),
            large_group: false,
            fanout_after: None,
        };
        let json: serde_json::Value = serde_json::from_slice(&edit.to_json()).unwrap();
        assert_eq!(
            (json["change"].as_str(), json["content"].as_str()),
            (Some("edited"), Some("hi, all"))
        );
        assert_eq!(
            ChatEvent::from_json(&edit.to_json()).unwrap(),
            ChatEvent::Change(edit.clone())
        );
        assert_eq!(MessageChange::from_json(&edit.to_json()).unwrap(), edit);
        let deleted = MessageChange {
            change: Change::Deleted,
            ..edit.clone()
        };
        assert_eq!(
            ChatEvent::from_json(&deleted.to_json()).unwrap(),
            ChatEvent::Change(deleted)
        );
        // Each shape's missing field is named; a change with a sentAt is neither.
        let mut no_text = json.clone();
        no_text.as_object_mut().unwrap().remove("content");
        let err = ChatEvent::from_json(no_text.to_string().as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `content`"), "{err}");
        let mut no_name = sample_json();
        no_name.as_object_mut().unwrap().remove("senderName");
        let err = ChatEvent::from_json(no_name.to_string().as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `senderName`"), "{err}");
        let mut both = json;
        both["sentAt"] = serde_json::json!("2026-11-25T10:00:00Z");
        assert!(ChatEvent::from_json(both.to_string().as_bytes()).is_err());
        let mut unknown = sample_json();
        unknown["change"] = serde_json::json!("pinned");
        assert!(ChatEvent::from_json(unknown.to_string().as_bytes()).is_err());
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
