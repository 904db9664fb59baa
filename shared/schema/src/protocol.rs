//! The client side of the WebSocket protocol (docs/protocol.md): actions parsed into typed commands,
//! replies, and error codes. Parsing enforces every limit, so handlers only see valid commands.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::events::{MAX_ADD_MEMBERS, MAX_SMALL_MEMBERS};
use crate::{ClientMessageId, ConversationId, DeviceToken, MessageContent, MessageId, SchemaError, Title, UserId};

/// Largest WebSocket message API Gateway accepts (frames are at most 32 KB each).
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;
/// Largest single WebSocket frame API Gateway accepts.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;
/// `history` page size: default and maximum.
pub const DEFAULT_HISTORY_LIMIT: u32 = 50;
pub const MAX_HISTORY_LIMIT: u32 = 100;

/// Every refusal's stable code (`{"type":"error","code":…}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not a JSON object.
    InvalidJson,
    /// No `action`, or one the server does not know.
    UnknownAction,
    /// A field is missing or invalid; the message names it.
    InvalidRequest,
    /// `content` is empty or only white space.
    EmptyContent,
    /// `content` is over 4,000 characters.
    ContentTooLong,
    /// The message is over 128 KB.
    MessageTooLarge,
    /// The sender is not a member of the conversation.
    NotAMember,
    /// No such conversation.
    NotFound,
    /// A member, but not allowed this (removing another member is the creator's).
    Forbidden,
    /// An idempotency key already used for another request (HTTP: another message).
    Conflict,
    /// Too many typing indicators from this connection.
    RateLimited,
    /// The connection is not registered (expired or never connected).
    Unauthorized,
    /// A dependency (the broker, the database) cannot take the request now; try again.
    Unavailable,
    /// Something unexpected; the server logged it.
    Internal,
}

impl ErrorCode {
    /// The HTTP API's status for a refusal with this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidJson | Self::InvalidRequest | Self::EmptyContent => 400,
            Self::Unauthorized => 401,
            Self::NotAMember | Self::Forbidden => 403,
            Self::NotFound | Self::UnknownAction => 404,
            Self::Conflict => 409,
            // RFC 9110 calls 413 "Content Too Large": the body, or the message in it.
            Self::MessageTooLarge | Self::ContentTooLong => 413,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::Unavailable => 503,
        }
    }
}

/// A refused action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
    pub client_message_id: Option<ClientMessageId>,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            client_message_id: None,
        }
    }

    pub fn with_client_message_id(mut self, id: Option<ClientMessageId>) -> Self {
        self.client_message_id = id;
        self
    }

    pub fn to_reply(&self) -> Reply {
        Reply::Error {
            code: self.code,
            message: self.message.clone(),
            client_message_id: self.client_message_id.clone(),
        }
    }
}

impl From<SchemaError> for Refusal {
    fn from(e: SchemaError) -> Self {
        Self::new(ErrorCode::InvalidRequest, e.to_string())
    }
}

/// A client action, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    CreateConversation {
        members: Vec<UserId>,
        title: Option<Title>,
        /// The client's idempotency key: a retried request with the same key creates nothing new.
        client_request_id: Option<ClientMessageId>,
    },
    ListConversations {
        /// At most this many (1 to 100, default 50), and never more than fit one reply.
        limit: u32,
        /// The `nextCursor` of the previous page.
        after: Option<String>,
    },
    SendMessage {
        conversation_id: ConversationId,
        content: MessageContent,
        client_message_id: Option<ClientMessageId>,
    },
    Typing {
        conversation_id: ConversationId,
        is_typing: bool,
    },
    MarkRead {
        conversation_id: ConversationId,
        message_id: MessageId,
    },
    History {
        conversation_id: ConversationId,
        before: Option<MessageId>,
        limit: u32,
    },
    RegisterDevice {
        token: DeviceToken,
        platform: String,
    },
    /// The device stops getting this user's notifications (sign-out).
    UnregisterDevice {
        token: DeviceToken,
    },
    /// The caller's unread counts: per conversation, and in all.
    Unread,
    /// Whether these users are online (those who share a conversation with the caller).
    GetPresence {
        users: Vec<UserId>,
    },
    /// Sets (or, with none, clears) a conversation's title. Members only.
    RenameConversation {
        conversation_id: ConversationId,
        title: Option<Title>,
    },
    /// Adds users to a group. Members only; not to a conversation of two (a direct one).
    AddMembers {
        conversation_id: ConversationId,
        members: Vec<UserId>,
    },
    /// Takes a member out of a group: the creator may remove anyone, anyone themself.
    RemoveMember {
        conversation_id: ConversationId,
        user_id: UserId,
    },
    /// The caller leaves a group.
    LeaveConversation {
        conversation_id: ConversationId,
    },
    /// The sender changes the text of a message they sent, within the deployment's edit window.
    EditMessage {
        conversation_id: ConversationId,
        message_id: MessageId,
        content: MessageContent,
    },
    /// The sender deletes a message they sent: it stays in history as a tombstone.
    DeleteMessage {
        conversation_id: ConversationId,
        message_id: MessageId,
    },
    /// A conversation's daily counters (from analytics) for its last `days` days, today included.
    ConversationStats {
        conversation_id: ConversationId,
        days: u32,
    },
}

/// `conversationStats.days`: default and maximum.
pub const DEFAULT_STATS_DAYS: u32 = 7;
pub const MAX_STATS_DAYS: u32 = 31;

/// The raw fields any action may carry; `Command::parse` turns them into a typed command.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fields {
    action: Option<Value>,
    members: Option<Value>,
    title: Option<Value>,
    conversation_id: Option<Value>,
    content: Option<Value>,
    client_message_id: Option<Value>,
    client_request_id: Option<Value>,
    is_typing: Option<Value>,
    message_id: Option<Value>,
    before: Option<Value>,
    limit: Option<Value>,
    after: Option<Value>,
    token: Option<Value>,
    platform: Option<Value>,
    users: Option<Value>,
    user_id: Option<Value>,
    days: Option<Value>,
}

/// A page size: 1 to 100, 50 when absent.
fn page_limit(v: Option<Value>) -> Result<u32, Refusal> {
    match v {
        None | Some(Value::Null) => Ok(DEFAULT_HISTORY_LIMIT),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(l) if (1..=u64::from(MAX_HISTORY_LIMIT)).contains(&l) => Ok(l as u32),
            _ => Err(invalid("limit", "must be a whole number from 1 to 100")),
        },
        Some(_) => Err(invalid("limit", "must be a whole number from 1 to 100")),
    }
}

/// User ids from a JSON list (`field` names it in refusals).
fn user_ids(items: Vec<Value>, field: &str) -> Result<Vec<UserId>, Refusal> {
    items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => UserId::parse(s).map_err(Refusal::from),
            _ => Err(invalid(field, "must be an array of user ids")),
        })
        .collect()
}

/// A message's text. Empty and too long get their own codes: clients show them differently.
fn message_content(v: Option<Value>) -> Result<MessageContent, Refusal> {
    let content = required(v, "content")?;
    if content.trim().is_empty() {
        return Err(Refusal::new(ErrorCode::EmptyContent, "content must not be empty"));
    }
    MessageContent::parse(content)
        .map_err(|_| Refusal::new(ErrorCode::ContentTooLong, "content is over 4,000 characters"))
}

fn invalid(field: &str, why: &str) -> Refusal {
    Refusal::new(ErrorCode::InvalidRequest, format!("{field}: {why}"))
}

fn string(v: Option<Value>, field: &str) -> Result<Option<String>, Refusal> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(field, "must be a string")),
    }
}

fn required(v: Option<Value>, field: &str) -> Result<String, Refusal> {
    string(v, field)?.ok_or_else(|| invalid(field, "is required"))
}

/// The client's id for one request, any action (`requestId`, 1–64 token characters): echoed in
/// the reply or error frame that answers it, so a client with several requests in flight can tell
/// the answers apart.
pub type RequestId = ClientMessageId;

impl Command {
    /// Parses a WebSocket message body. Refusals carry the body's `clientMessageId` when it has a
    /// valid one, so the client can match the error to what it sent.
    pub fn parse(body: &str) -> Result<Command, Refusal> {
        Self::parse_request(body).1
    }

    /// As [`Command::parse`], with the body's `requestId` when it has a valid one (also when the
    /// command itself is refused).
    pub fn parse_request(body: &str) -> (Option<RequestId>, Result<Command, Refusal>) {
        match Self::object(body) {
            Ok(value) => Self::parse_object(value),
            Err(refusal) => (None, Err(refusal)),
        }
    }

    /// A body within the size limit that holds a JSON object.
    pub(crate) fn object(body: &str) -> Result<Value, Refusal> {
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(Refusal::new(ErrorCode::MessageTooLarge, "the message is over 128 KB"));
        }
        let value: Value = serde_json::from_str(body)
            .map_err(|e| Refusal::new(ErrorCode::InvalidJson, format!("invalid JSON: {e}")))?;
        if !value.is_object() {
            return Err(Refusal::new(
                ErrorCode::InvalidJson,
                "the message must be a JSON object",
            ));
        }
        Ok(value)
    }

    /// A command from a JSON object's fields (`action` names it), with its `requestId`.
    pub(crate) fn parse_object(value: Value) -> (Option<RequestId>, Result<Command, Refusal>) {
        let token = |field: &str| {
            value
                .get(field)
                .and_then(Value::as_str)
                .and_then(|s| ClientMessageId::parse(s).ok())
        };
        let (request_id, client_message_id) = (token("requestId"), token("clientMessageId"));
        let command = Self::from_fields(value).map_err(|r| r.with_client_message_id(client_message_id));
        (request_id, command)
    }

    fn from_fields(value: Value) -> Result<Command, Refusal> {
        let f: Fields =
            serde_json::from_value(value).map_err(|e| Refusal::new(ErrorCode::InvalidJson, e.to_string()))?;
        let action = match f.action {
            Some(Value::String(a)) => a,
            Some(_) => return Err(Refusal::new(ErrorCode::UnknownAction, "action must be a string")),
            None => return Err(Refusal::new(ErrorCode::UnknownAction, "action is required")),
        };
        let conversation = |v: Option<Value>| -> Result<ConversationId, Refusal> {
            Ok(ConversationId::parse(required(v, "conversationId")?)?)
        };
        Ok(match action.as_str() {
            "createConversation" => {
                let members = match f.members {
                    Some(Value::Array(items)) => items,
                    Some(_) => return Err(invalid("members", "must be an array of user ids")),
                    None => return Err(invalid("members", "is required")),
                };
                // A group grows past this with addMembers (a large group).
                if members.is_empty() || members.len() >= MAX_SMALL_MEMBERS {
                    return Err(invalid(
                        "members",
                        &format!("must hold 1 to {} other users", MAX_SMALL_MEMBERS - 1),
                    ));
                }
                let members = user_ids(members, "members")?;
                let title = string(f.title, "title")?.map(Title::parse).transpose()?;
                let client_request_id = string(f.client_request_id, "clientRequestId")?
                    .map(ClientMessageId::parse)
                    .transpose()?;
                Command::CreateConversation {
                    members,
                    title,
                    client_request_id,
                }
            }
            "listConversations" => Command::ListConversations {
                limit: page_limit(f.limit)?,
                after: string(f.after, "after")?,
            },
            "sendMessage" => {
                let content = message_content(f.content)?;
                Command::SendMessage {
                    conversation_id: conversation(f.conversation_id)?,
                    content,
                    client_message_id: string(f.client_message_id, "clientMessageId")?
                        .map(ClientMessageId::parse)
                        .transpose()?,
                }
            }
            "typing" => Command::Typing {
                conversation_id: conversation(f.conversation_id)?,
                is_typing: match f.is_typing {
                    Some(Value::Bool(b)) => b,
                    None => true,
                    Some(_) => return Err(invalid("isTyping", "must be true or false")),
                },
            },
            "markRead" => Command::MarkRead {
                conversation_id: conversation(f.conversation_id)?,
                message_id: MessageId::parse(&required(f.message_id, "messageId")?)?,
            },
            "editMessage" => {
                let content = message_content(f.content)?;
                Command::EditMessage {
                    conversation_id: conversation(f.conversation_id)?,
                    message_id: MessageId::parse(&required(f.message_id, "messageId")?)?,
                    content,
                }
            }
            "deleteMessage" => Command::DeleteMessage {
                conversation_id: conversation(f.conversation_id)?,
                message_id: MessageId::parse(&required(f.message_id, "messageId")?)?,
            },
            "history" => Command::History {
                conversation_id: conversation(f.conversation_id)?,
                before: string(f.before, "before")?.map(|b| MessageId::parse(&b)).transpose()?,
                limit: page_limit(f.limit)?,
            },
            "registerDevice" => {
                let token = DeviceToken::parse(required(f.token, "token")?)?;
                let platform = string(f.platform, "platform")?.unwrap_or_else(|| "fcm".into());
                if platform != "fcm" {
                    return Err(invalid("platform", "only \"fcm\" is supported"));
                }
                Command::RegisterDevice { token, platform }
            }
            "unregisterDevice" => Command::UnregisterDevice {
                token: DeviceToken::parse(required(f.token, "token")?)?,
            },
            "unread" => Command::Unread,
            "renameConversation" => Command::RenameConversation {
                conversation_id: conversation(f.conversation_id)?,
                title: string(f.title, "title")?
                    .filter(|t| !t.trim().is_empty())
                    .map(Title::parse)
                    .transpose()?,
            },
            "addMembers" => {
                let members = match f.members {
                    Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_ADD_MEMBERS => items,
                    Some(Value::Array(_)) => {
                        return Err(invalid(
                            "members",
                            &format!("must hold 1 to {MAX_ADD_MEMBERS} user ids"),
                        ));
                    }
                    Some(_) => return Err(invalid("members", "must be an array of user ids")),
                    None => return Err(invalid("members", "is required")),
                };
                let members = user_ids(members, "members")?;
                Command::AddMembers {
                    conversation_id: conversation(f.conversation_id)?,
                    members,
                }
            }
            "removeMember" => Command::RemoveMember {
                conversation_id: conversation(f.conversation_id)?,
                user_id: UserId::parse(required(f.user_id, "userId")?)?,
            },
            "leaveConversation" => Command::LeaveConversation {
                conversation_id: conversation(f.conversation_id)?,
            },
            "conversationStats" => Command::ConversationStats {
                conversation_id: conversation(f.conversation_id)?,
                days: match f.days {
                    None | Some(Value::Null) => DEFAULT_STATS_DAYS,
                    Some(Value::Number(n)) => match n.as_u64() {
                        Some(d) if (1..=u64::from(MAX_STATS_DAYS)).contains(&d) => d as u32,
                        _ => return Err(invalid("days", "must be a whole number from 1 to 31")),
                    },
                    Some(_) => return Err(invalid("days", "must be a whole number from 1 to 31")),
                },
            },
            "getPresence" => {
                // `users` (a list), or one `userId` (the HTTP API's path).
                let users = match (f.users, f.user_id) {
                    (Some(Value::Array(items)), _) => items,
                    (Some(_), _) => return Err(invalid("users", "must be an array of user ids")),
                    (None, Some(one)) => vec![one],
                    (None, None) => return Err(invalid("users", "is required")),
                };
                if users.is_empty() || users.len() > MAX_PRESENCE_USERS {
                    return Err(invalid(
                        "users",
                        &format!("must hold 1 to {MAX_PRESENCE_USERS} user ids"),
                    ));
                }
                let users = user_ids(users, "users")?;
                Command::GetPresence { users }
            }
            other => {
                return Err(Refusal::new(
                    ErrorCode::UnknownAction,
                    format!("unknown action {other:?}"),
                ));
            }
        })
    }

    /// The action's name, for logs.
    pub fn action(&self) -> &'static str {
        match self {
            Self::CreateConversation { .. } => "createConversation",
            Self::ListConversations { .. } => "listConversations",
            Self::SendMessage { .. } => "sendMessage",
            Self::Typing { .. } => "typing",
            Self::MarkRead { .. } => "markRead",
            Self::History { .. } => "history",
            Self::RegisterDevice { .. } => "registerDevice",
            Self::UnregisterDevice { .. } => "unregisterDevice",
            Self::Unread => "unread",
            Self::GetPresence { .. } => "getPresence",
            Self::ConversationStats { .. } => "conversationStats",
            Self::RenameConversation { .. } => "renameConversation",
            Self::AddMembers { .. } => "addMembers",
            Self::RemoveMember { .. } => "removeMember",
            Self::LeaveConversation { .. } => "leaveConversation",
            Self::EditMessage { .. } => "editMessage",
            Self::DeleteMessage { .. } => "deleteMessage",
        }
    }
}

/// A message as `history` and `listConversations` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub sender_id: UserId,
    pub sender_name: String,
    /// Empty once the message is deleted.
    pub content: String,
    pub sent_at: DateTime<Utc>,
    /// When the sender last edited it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<DateTime<Utc>>,
    /// When the sender deleted it: a tombstone, with no text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
    /// In `history`, on the asker's own messages: the status every other member has reached
    /// (SENT, DELIVERED or READ). Absent on others' messages (and where it was not looked up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::DeliveryStatus>,
    /// In a large group's `history`, on the asker's own messages: how many other members have
    /// read up to it (receipts there are counted, not kept per reader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_by: Option<u64>,
}

/// One entry of `listConversations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationSummary {
    pub conversation_id: ConversationId,
    pub title: Option<Title>,
    /// The members, the first `MAX_SUMMARY_MEMBERS` of them in a large group.
    pub members: Vec<UserId>,
    /// How many members there are in all.
    #[serde(default)]
    pub member_count: usize,
    pub unread: i64,
    pub last_message: Option<MessageView>,
}

/// Most users one `getPresence` asks about.
pub const MAX_PRESENCE_USERS: usize = 100;

/// Online while any of the user's connections is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PresenceStatus {
    Online,
    Offline,
}

/// One user's presence (`getPresence`, and the `presence` frame's fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPresence {
    pub user_id: UserId,
    pub status: PresenceStatus,
    /// When the user's last connection closed, if they are offline and were seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<DateTime<Utc>>,
}

/// One day of a conversation's counters (UTC days).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DailyStats {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Messages stored in the conversation.
    pub messages: i64,
    /// Times a member marked it read.
    pub reads: i64,
    /// Edits of its messages.
    #[serde(default)]
    pub edits: i64,
    /// Messages deleted.
    #[serde(default)]
    pub deletions: i64,
}

/// One conversation's unread count (`unread`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnreadCount {
    pub conversation_id: ConversationId,
    pub unread: i64,
}

/// Most members a `listConversations` entry lists (a large group's would not fit a reply).
pub const MAX_SUMMARY_MEMBERS: usize = 100;

/// The most a reply's items may add up to: API Gateway sends at most 128 KB per message; the
/// rest is room for the reply's envelope.
pub const REPLY_ITEMS_BUDGET: usize = 120 * 1024;

impl ConversationSummary {
    /// The order of `listConversations` (most recent activity first) as a cursor: the last
    /// message's id, else the conversation's own (a ULID).
    pub fn activity_key(&self) -> String {
        self.last_message
            .as_ref()
            .map(|m| m.message_id.to_string())
            .unwrap_or_else(|| self.conversation_id.to_string())
    }
}

/// How many of `items`, from the first, fit in `budget` bytes of JSON (at least one, so a
/// client paging through always moves on).
pub fn fitting<T: Serialize>(items: &[T], budget: usize) -> usize {
    let mut used = 0;
    for (i, item) in items.iter().enumerate() {
        used += serde_json::to_vec(item).map_or(budget, |v| v.len()) + 1;
        if used > budget {
            return i.max(1);
        }
    }
    items.len()
}

/// Replies to the sender of an action.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Reply {
    #[serde(rename_all = "camelCase")]
    Conversation {
        conversation_id: ConversationId,
        /// Every member; in a large group, none (see `memberCount`).
        members: Vec<UserId>,
        title: Option<Title>,
        member_count: usize,
    },
    #[serde(rename_all = "camelCase")]
    Conversations {
        conversations: Vec<ConversationSummary>,
        /// Present when there are more: pass it as `after` for the next page.
        #[serde(skip_serializing_if = "Option::is_none")]
        next_cursor: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        client_message_id: Option<ClientMessageId>,
        message_id: MessageId,
        conversation_id: ConversationId,
        status: crate::DeliveryStatus,
        sent_at: DateTime<Utc>,
    },
    #[serde(rename_all = "camelCase")]
    History {
        conversation_id: ConversationId,
        messages: Vec<MessageView>,
        next_before: Option<MessageId>,
    },
    /// `editMessage` done: the broker has the edit; members get a `messageEdited` frame.
    #[serde(rename_all = "camelCase")]
    MessageEdited {
        conversation_id: ConversationId,
        message_id: MessageId,
        content: MessageContent,
        edited_at: DateTime<Utc>,
    },
    /// `deleteMessage` done (or done before): members get a `messageDeleted` frame.
    #[serde(rename_all = "camelCase")]
    MessageDeleted {
        conversation_id: ConversationId,
        message_id: MessageId,
        deleted_at: DateTime<Utc>,
    },
    DeviceRegistered,
    DeviceUnregistered,
    #[serde(rename_all = "camelCase")]
    Presence {
        users: Vec<UserPresence>,
    },
    #[serde(rename_all = "camelCase")]
    Stats {
        conversation_id: ConversationId,
        /// Oldest first, one entry a day (days with nothing counted show zeros).
        days: Vec<DailyStats>,
    },
    #[serde(rename_all = "camelCase")]
    Unread {
        /// Unread messages in all the caller's conversations.
        total: i64,
        /// The conversations with unread messages, most recent activity first.
        conversations: Vec<UnreadCount>,
    },
    #[serde(rename_all = "camelCase")]
    Error {
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_message_id: Option<ClientMessageId>,
    },
}

impl Reply {
    pub fn to_json(&self) -> String {
        self.to_json_for(None)
    }

    /// The frame answering the request `request_id` (echoed as `requestId`).
    pub fn to_json_for(&self, request_id: Option<&RequestId>) -> String {
        #[derive(Serialize)]
        struct Answer<'a> {
            #[serde(flatten)]
            reply: &'a Reply,
            #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
            request_id: Option<&'a RequestId>,
        }
        serde_json::to_string(&Answer {
            reply: self,
            request_id,
        })
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(body: &str) -> Refusal {
        Command::parse(body).unwrap_err()
    }

    #[test]
    fn a_request_id_is_read_from_any_action_and_echoed_in_its_answer() {
        let (id, command) = Command::parse_request(r#"{"action":"listConversations","requestId":"r-7"}"#);
        assert_eq!(id.as_ref().map(RequestId::as_str), Some("r-7"));
        assert!(command.is_ok());
        // Also when the command is refused, with the send's clientMessageId beside it.
        let (id, refused) =
            Command::parse_request(r#"{"action":"sendMessage","requestId":"r-8","clientMessageId":"m-1"}"#);
        let refusal = refused.unwrap_err();
        let frame: Value = serde_json::from_str(&refusal.to_reply().to_json_for(id.as_ref())).unwrap();
        assert_eq!(
            (
                frame["type"].as_str(),
                frame["requestId"].as_str(),
                frame["clientMessageId"].as_str()
            ),
            (Some("error"), Some("r-8"), Some("m-1"))
        );
        // No id, no field; an id that is not a token is not echoed.
        let (none, _) = Command::parse_request(r#"{"action":"listConversations","requestId":"a b"}"#);
        assert!(none.is_none());
        assert!(!refusal.to_reply().to_json_for(None).contains("requestId"));
    }

    #[test]
    fn parses_every_action() {
        let id = "01JDQ3ZK6M0000000000000000";
        let cases = [
            (
                r#"{"action":"createConversation","members":["bob"],"title":"Lunch"}"#,
                "createConversation",
            ),
            (r#"{"action":"listConversations"}"#, "listConversations"),
            (
                r#"{"action":"sendMessage","conversationId":"c1","content":"hi","clientMessageId":"m1"}"#,
                "sendMessage",
            ),
            (
                r#"{"action":"typing","conversationId":"c1","isTyping":false}"#,
                "typing",
            ),
            (
                &format!(r#"{{"action":"markRead","conversationId":"c1","messageId":"{id}"}}"#),
                "markRead",
            ),
            (
                &format!(r#"{{"action":"history","conversationId":"c1","before":"{id}","limit":10}}"#),
                "history",
            ),
            (
                r#"{"action":"registerDevice","token":"fcm-token","platform":"fcm"}"#,
                "registerDevice",
            ),
            (
                &format!(r#"{{"action":"editMessage","conversationId":"c1","messageId":"{id}","content":"hi"}}"#),
                "editMessage",
            ),
            (
                &format!(r#"{{"action":"deleteMessage","conversationId":"c1","messageId":"{id}"}}"#),
                "deleteMessage",
            ),
        ];
        for (body, action) in cases {
            assert_eq!(Command::parse(body).unwrap().action(), action, "{body}");
        }
    }

    #[test]
    fn unknown_fields_such_as_a_sender_are_ignored_not_refused() {
        // A send carries no sender: there is no field for one (core's actions take the sender
        // from the connection; see `a_sender_named_in_the_body_is_ignored`).
        let cmd =
            Command::parse(r#"{"action":"sendMessage","conversationId":"c1","content":"hi","senderId":"mallory"}"#);
        let Ok(Command::SendMessage { content, .. }) = cmd else {
            panic!("parsed as a send: {cmd:?}")
        };
        assert_eq!(content.as_str(), "hi");
    }

    #[test]
    fn every_refusal_has_its_code() {
        assert_eq!(refusal("not json").code, ErrorCode::InvalidJson);
        assert_eq!(refusal("[1,2]").code, ErrorCode::InvalidJson);
        assert_eq!(refusal(r#"{"content":"hi"}"#).code, ErrorCode::UnknownAction);
        assert_eq!(refusal(r#"{"action":"dance"}"#).code, ErrorCode::UnknownAction);
        let missing = refusal(r#"{"action":"sendMessage","content":"hi"}"#);
        assert_eq!(
            (missing.code, missing.message.as_str()),
            (ErrorCode::InvalidRequest, "conversationId: is required")
        );
        let empty = refusal(r#"{"action":"sendMessage","conversationId":"c1","content":"  ","clientMessageId":"m7"}"#);
        assert_eq!(empty.code, ErrorCode::EmptyContent);
        assert_eq!(empty.client_message_id.unwrap().as_str(), "m7");
        let long = format!(
            r#"{{"action":"sendMessage","conversationId":"c1","content":"{}"}}"#,
            "x".repeat(4_001)
        );
        assert_eq!(refusal(&long).code, ErrorCode::ContentTooLong);
        let huge = format!(
            r#"{{"action":"sendMessage","conversationId":"c1","content":"{}"}}"#,
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(refusal(&huge).code, ErrorCode::MessageTooLarge);
        assert_eq!(
            refusal(r#"{"action":"history","conversationId":"c1","limit":101}"#).code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            refusal(r#"{"action":"createConversation","members":[]}"#).code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            refusal(r#"{"action":"markRead","conversationId":"c1","messageId":"nope"}"#).code,
            ErrorCode::InvalidRequest
        );
        let id = "01JDQ3ZK6M0000000000000000";
        let edit = |content: &str| {
            refusal(&format!(
                r#"{{"action":"editMessage","conversationId":"c1","messageId":"{id}","content":"{content}"}}"#
            ))
            .code
        };
        assert_eq!(edit(" "), ErrorCode::EmptyContent);
        assert_eq!(edit(&"x".repeat(4_001)), ErrorCode::ContentTooLong);
        let no_id = refusal(r#"{"action":"deleteMessage","conversationId":"c1"}"#);
        assert_eq!(no_id.message, "messageId: is required");
    }

    #[test]
    fn replies_have_the_protocol_shape() {
        let r = Refusal::new(ErrorCode::NotAMember, "not a member of c1").to_reply();
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"type":"error","code":"not_a_member","message":"not a member of c1"})
        );
        assert_eq!(Reply::DeviceRegistered.to_json(), r#"{"type":"deviceRegistered"}"#);
    }
}
