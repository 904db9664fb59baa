//! The narrow interfaces the rules need from the outside world. Adapters (DynamoDB,
//! `@connections`, Kafka, FCM) implement them in `relaychat-adapters`; `memory` has fakes.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use chrono::{DateTime, Utc};
use relaychat_schema::events::TopicEvent;
use relaychat_schema::kafka::RawRecord;
use relaychat_schema::protocol::{ConversationSummary, MessageView, PresenceStatus};
use relaychat_schema::{
    ChatMessage, ClientMessageId, ConnectionId, ConversationId, DeliveryStatus, DeviceToken, DisplayName,
    MessageChange, MessageId, Notification, Title, Topics, UserId,
};

use crate::Error;
use crate::limits::{Budget, Limited};

/// What storing a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// Stored now. `already_read_by`: recipients whose read cursor was past this message when it
    /// arrived (it reached storage late, or was minted out of order): it is not unread for them.
    Stored { already_read_by: Vec<UserId> },
    /// It was stored before; nothing changed.
    Repeat,
}

/// What applying a change to a stored message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// Applied now, or applied before (a replay).
    Applied,
    /// A later edit, or a deletion, is there already: this one changes nothing.
    Superseded,
    /// No such message is stored.
    Missing,
}

/// The messages of conversations.
pub trait MessageStore: Sync {
    /// Stores the message and, atomically with it, adds one to the unread count of each recipient
    /// whose read cursor is before it, writes a READ receipt for each recipient whose cursor is
    /// past it, and makes it the conversation's last message unless a later one is. A repeat
    /// changes nothing.
    fn insert_message(&self, message: &ChatMessage) -> impl Future<Output = Result<Inserted, Error>> + Send;

    /// Makes this the conversation's last message, unless a later one is already there (for a
    /// repeat: it heals a store that crashed between the two in an earlier version).
    fn set_last_message(&self, message: &ChatMessage) -> impl Future<Output = Result<(), Error>> + Send;

    /// Applies an edit (unless a later edit or the deletion is there) or a deletion (the text
    /// goes, a tombstone stays), to the message and, if it is the last one, to the
    /// conversation's last message.
    fn apply_change(&self, change: &MessageChange) -> impl Future<Output = Result<ChangeOutcome, Error>> + Send;

    /// Ids and senders of the first `limit` messages with `after < id <= up_to`, oldest first.
    fn messages_between(
        &self,
        conversation: &ConversationId,
        after: Option<MessageId>,
        up_to: MessageId,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(MessageId, UserId)>, Error>> + Send;
}

/// The message a large group's reader has read up to, and who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPlace {
    pub message: MessageId,
    pub sender: UserId,
}

/// A member's reading position in a conversation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadPosition {
    /// Read up to here: receipts written and senders told.
    pub cursor: Option<MessageId>,
    /// Receipts written and senders told up to here, on the way to a cursor not yet moved (a
    /// long backlog is worked through in several invocations).
    pub progress: Option<MessageId>,
}

impl ReadPosition {
    /// Where the next piece of work starts.
    pub fn resume_from(&self) -> Option<MessageId> {
        self.cursor.max(self.progress)
    }
}

/// Where each member has read up to in each conversation, and their unread count.
pub trait ReadState: Sync {
    fn read_position(
        &self,
        user: &UserId,
        conversation: &ConversationId,
    ) -> impl Future<Output = Result<ReadPosition, Error>> + Send;

    /// Records that receipts are done up to `to` (never moves back).
    fn save_read_progress(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        to: MessageId,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// In a large group: moves the reader's position forward (never back) to the place in the
    /// conversation's sequence of the latest message up to `to` (`to` itself once stored), which
    /// sets their unread count and their part in its messages' read-by counts. The message the
    /// position moved to; `None` when it did not move (no such message, or read already).
    fn advance_read_position(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        to: MessageId,
    ) -> impl Future<Output = Result<Option<ReadPlace>, Error>> + Send;

    /// Moves the cursor forward to `to` (never back) and sets the unread count to the number of
    /// later messages from others, exact even while messages are being stored concurrently.
    fn advance_read_cursor(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        to: MessageId,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Where a receipt stands after an attempt to move it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptMove {
    Moved,
    /// It already had this status (a repeat: tell the sender again, harmlessly).
    AlreadyThere,
    /// It is already further on (a late DELIVERED after READ): nothing to tell.
    Beyond,
}

/// Per-recipient receipts of messages.
pub trait Receipts: Sync {
    /// Moves the receipt of `message` for `recipient` forward to `status`.
    fn advance_receipt(
        &self,
        message: MessageId,
        conversation: &ConversationId,
        recipient: &UserId,
        status: DeliveryStatus,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<ReceiptMove, Error>> + Send;

    /// Marks these messages READ for `reader`, in batches. READ is the last status, so the write
    /// needs no condition to stay forward-only, and repeating it changes nothing.
    fn mark_read(
        &self,
        conversation: &ConversationId,
        reader: &UserId,
        messages: &[MessageId],
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// The live WebSocket connections of users.
pub trait ConnectionDirectory: Sync {
    fn connections_of(&self, user: &UserId) -> impl Future<Output = Result<Vec<ConnectionId>, Error>> + Send;
    fn remove_connection(&self, connection: &ConnectionId) -> impl Future<Output = Result<(), Error>> + Send;
}

/// A borrowed directory is one too (a wrapper over a store that serves other ports as well).
impl<D: ConnectionDirectory> ConnectionDirectory for &D {
    fn connections_of(&self, user: &UserId) -> impl Future<Output = Result<Vec<ConnectionId>, Error>> + Send {
        (**self).connections_of(user)
    }
    fn remove_connection(&self, connection: &ConnectionId) -> impl Future<Output = Result<(), Error>> + Send {
        (**self).remove_connection(connection)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostOutcome {
    Delivered,
    /// The connection is gone (API Gateway's 410 `GoneException`).
    Gone,
}

/// Sends frames down WebSocket connections (API Gateway's `@connections` API).
pub trait FramePoster: Sync {
    fn post(&self, connection: &ConnectionId, frame: &[u8]) -> impl Future<Output = Result<PostOutcome, Error>> + Send;
}

/// Publishes to Kafka.
pub trait Publisher: Sync {
    /// Returns once the broker has the record (or with an error well inside the caller's timeout).
    fn publish(&self, topic: &str, key: &str, value: Vec<u8>) -> impl Future<Output = Result<(), Error>> + Send;

    /// Queues the record and returns at once, never waiting on the broker: for events whose loss
    /// is acceptable (analytics). `Err` only when it could not even be queued.
    fn publish_best_effort(&self, topic: &str, key: &str, value: Vec<u8>) -> Result<(), Error>;
}

/// Publishing a typed event: its type names the topic and the key, so no caller can pick the
/// wrong ones. Every `Publisher` has it.
pub trait PublishEvent: Publisher {
    /// Waits for the broker's acknowledgement.
    fn publish_event<E: TopicEvent + Sync>(
        &self,
        topics: &Topics,
        event: &E,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        self.publish(topics.name(E::TOPIC), event.key(), event.to_json())
    }

    /// Queues it and returns at once (see `Publisher::publish_best_effort`).
    fn publish_event_best_effort<E: TopicEvent>(&self, topics: &Topics, event: &E) -> Result<(), Error> {
        self.publish_best_effort(topics.name(E::TOPIC), event.key(), event.to_json())
    }
}

impl<P: Publisher> PublishEvent for P {}

/// A consumer's dead-letter topic.
pub trait DeadLetters: Sync {
    fn dead_letter(&self, record: &RawRecord, reason: &str) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Where a notification stands when an attempt to send it begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// To send, except to these device tokens, which an earlier attempt reached already.
    Send { already_sent_to: Vec<String> },
    /// Sent before: nothing to do.
    AlreadySent,
}

/// The notification history (30 days).
pub trait NotificationLog: Sync {
    /// Records the notification if it is new, and says what is left to do.
    fn begin(&self, notification: &Notification) -> impl Future<Output = Result<Begun, Error>> + Send;
    /// Remembers that this device got it (a retry does not send it there again).
    fn sent_to(&self, notification: &Notification, device: &Device) -> impl Future<Output = Result<(), Error>> + Send;
    fn mark_sent(&self, notification: &Notification, devices: usize) -> impl Future<Output = Result<(), Error>> + Send;
}

/// A registered push device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub user: UserId,
    pub token: DeviceToken,
    pub platform: String,
}

pub trait DeviceStore: Sync {
    /// Registers (or refreshes) a device. A token belongs to one user: registering it for
    /// another user takes it away from the first, so their previews stop going there.
    fn register_device(&self, device: &Device) -> impl Future<Output = Result<(), Error>> + Send;
    fn devices_of(&self, user: &UserId) -> impl Future<Output = Result<Vec<Device>, Error>> + Send;
    /// Forgets the device (nothing if it is not this user's).
    fn remove_device(&self, device: &Device) -> impl Future<Output = Result<(), Error>> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushResult {
    Sent,
    /// The push service no longer knows this token (FCM `UNREGISTERED`): delete it.
    Unregistered,
    /// The push service refused this token itself (malformed, or another sender's): delete it.
    TokenRejected(String),
}

/// A push service (FCM HTTP v1).
pub trait PushSender: Sync {
    /// `Err` retryable: try this device again later; `Err` permanent: this notification cannot
    /// go to this device (e.g. the payload was refused).
    fn send(
        &self,
        device: &Device,
        notification: &Notification,
    ) -> impl Future<Output = Result<PushResult, Error>> + Send;
}

/// One counter increment: `counter` names the row (e.g. `conv#c1#2026-11-25`), `field` the count.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CounterKey {
    pub counter: String,
    pub field: String,
}

/// One record's contribution to the counters, under the record's own identity (its message or
/// event id), which is the same however often, and from whichever topic incarnation, it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub id: String,
    pub keys: Vec<CounterKey>,
}

/// Analytics counters, each record counted once by its identity.
pub trait AnalyticsStore: Sync {
    /// Adds the increments of every record not counted before, atomically with remembering it;
    /// returns how many were new. Records already counted add nothing.
    fn count_once(&self, records: &[Counted]) -> impl Future<Output = Result<usize, Error>> + Send;

    /// The fields of these counter rows (at most 100); a row never counted is absent.
    fn counters(
        &self,
        rows: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, BTreeMap<String, i64>>, Error>> + Send;
}

/// Who a verified token says the user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: UserId,
    pub name: DisplayName,
    /// When the token the connection was opened with expires: the connection is served until then.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why a token was refused (every case is a 401 at `$connect`).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no token")]
    Missing,
    #[error("invalid token")]
    Invalid(#[source] crate::BoxError),
}

/// Verifies connect tokens.
pub trait Authenticator: Sync {
    fn verify(&self, token: &str) -> Result<Identity, AuthError>;
}

/// The registry of connections the WebSocket functions keep.
pub trait ConnectionRegistry: Sync {
    fn register(
        &self,
        connection: &ConnectionId,
        identity: &Identity,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    fn unregister(&self, connection: &ConnectionId) -> impl Future<Output = Result<(), Error>> + Send;
    fn identity_of(&self, connection: &ConnectionId) -> impl Future<Output = Result<Option<Identity>, Error>> + Send;
    /// Takes one unit of `budget` for `action`; `false` when the budget of the current window is
    /// spent (or, for a connection's, the connection is gone).
    fn allow(
        &self,
        budget: Budget<'_>,
        action: Limited,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

/// Most message × recipient receipts one `history` page looks up (a page of 100 messages in a
/// 1:1, fewer messages in a group: the newest of the asker's own first).
pub const MAX_RECEIPT_LOOKUPS: usize = 300;

/// For each message, the status every recipient has reached: the least of theirs, SENT for one
/// with no receipt (`receipt` looks one up). What `ConversationStore::receipt_statuses` answers,
/// from whatever holds the receipts.
pub fn status_reached_by_all(
    messages: &[MessageId],
    recipients: &[UserId],
    receipt: impl Fn(MessageId, &UserId) -> Option<DeliveryStatus>,
) -> HashMap<MessageId, DeliveryStatus> {
    messages
        .iter()
        .map(|m| {
            let reached = recipients
                .iter()
                .map(|r| receipt(*m, r).unwrap_or(DeliveryStatus::Sent))
                .min()
                .unwrap_or(DeliveryStatus::Sent);
            (*m, reached)
        })
        .collect()
}

/// An HTTP send's idempotency key and the message it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendClaim {
    pub sender: UserId,
    pub key: ClientMessageId,
    pub conversation_id: ConversationId,
    pub content: String,
    pub message_id: MessageId,
    pub sent_at: DateTime<Utc>,
}

/// A conversation and its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: ConversationId,
    pub title: Option<Title>,
    /// Every member of a small conversation; none of a large group (its memberships are paged:
    /// `ConversationStore::members_page`).
    pub members: Vec<UserId>,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    /// A large group (over `MAX_SMALL_MEMBERS`): how many members it has.
    pub large: Option<usize>,
}

impl Conversation {
    pub fn member_count(&self) -> usize {
        self.large.unwrap_or(self.members.len())
    }

    pub fn is_large(&self) -> bool {
        self.large.is_some()
    }

    /// A conversation of two is their direct conversation, one per pair: the pair's key
    /// (`direct#<a>#<b>`, the two ids in order; ids never hold `#`).
    pub fn direct_pair(&self) -> Option<String> {
        match self.members.as_slice() {
            [a, b] => {
                let (first, second) = if a <= b { (a, b) } else { (b, a) };
                Some(format!("direct#{first}#{second}"))
            }
            _ => None,
        }
    }
}

pub trait ConversationStore: Sync {
    /// Stores the conversation and a membership for each member, atomically, and returns the
    /// conversation as stored. With a `request` key (the creator's idempotency key) a repeat of
    /// the same request creates nothing and returns the conversation the first try created. A
    /// conversation of two whose pair has one already creates nothing and returns that one.
    fn create_conversation(
        &self,
        conversation: &Conversation,
        request: Option<&ClientMessageId>,
    ) -> impl Future<Output = Result<Conversation, Error>> + Send;
    fn conversation(&self, id: &ConversationId) -> impl Future<Output = Result<Option<Conversation>, Error>> + Send;
    /// Makes `members` the conversation's members (memberships for the new, none left for the
    /// removed), if its members are still `current.members`; `Ok(None)` when they changed
    /// meanwhile (read it again), or when it is gone.
    fn set_members(
        &self,
        current: &Conversation,
        members: &[UserId],
    ) -> impl Future<Output = Result<Option<Conversation>, Error>> + Send;
    /// Adds members to a group that is large or becomes large with them (more than
    /// `MAX_SMALL_MEMBERS`): memberships for those not members yet, each starting with nothing
    /// unread; a small group's listed members become memberships only, if they are still
    /// `current.members` (`Ok(None)` when they changed meanwhile, or it is gone).
    fn add_to_large(
        &self,
        current: &Conversation,
        added: &[UserId],
    ) -> impl Future<Output = Result<Option<Conversation>, Error>> + Send;
    /// Takes a member out of a large group (`Ok(None)`: they were not a member).
    fn remove_from_large(
        &self,
        current: &Conversation,
        member: &UserId,
    ) -> impl Future<Output = Result<Option<Conversation>, Error>> + Send;
    /// Whether `user` is a member (a large group's check; a small one lists its members).
    fn is_member(
        &self,
        conversation: &ConversationId,
        user: &UserId,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
    /// In a large group: for each of `messages` (by `sender`), how many other members have read
    /// up to it.
    fn read_by(
        &self,
        conversation: &ConversationId,
        sender: &UserId,
        messages: &[MessageId],
    ) -> impl Future<Output = Result<HashMap<MessageId, u64>, Error>> + Send;
    /// Claims an HTTP send's idempotency key for this message, for a day; `Some(earlier)` when
    /// the key was claimed before (by `claim.sender`), with what it was claimed for.
    fn claim_send(&self, claim: &SendClaim) -> impl Future<Output = Result<Option<SendClaim>, Error>> + Send;
    /// For each of `messages`, the status all of `recipients` have reached (SENT where any has
    /// no receipt). At most `MAX_RECEIPT_LOOKUPS` message × recipient pairs are asked for.
    fn receipt_statuses(
        &self,
        messages: &[MessageId],
        recipients: &[UserId],
    ) -> impl Future<Output = Result<HashMap<MessageId, DeliveryStatus>, Error>> + Send;
    /// Sets or clears its title; `Ok(None)` when there is no such conversation.
    fn set_title(
        &self,
        id: &ConversationId,
        title: Option<&Title>,
    ) -> impl Future<Output = Result<Option<Conversation>, Error>> + Send;
    /// The user's conversations with unread counts and last messages, in any order (the rules
    /// order and page them: `actions::conversation_page`).
    fn conversations_of(&self, user: &UserId) -> impl Future<Output = Result<Vec<ConversationSummary>, Error>> + Send;
    /// One message as history shows it (with its edit or deletion), if it is stored.
    fn message(
        &self,
        conversation: &ConversationId,
        id: MessageId,
    ) -> impl Future<Output = Result<Option<MessageView>, Error>> + Send;
    /// Up to `limit` messages before `before` (or the newest), newest first, and the cursor of the
    /// next page when there may be one.
    fn history(
        &self,
        conversation: &ConversationId,
        before: Option<MessageId>,
        limit: u32,
    ) -> impl Future<Output = Result<(Vec<MessageView>, Option<MessageId>), Error>> + Send;
}

/// A conversation's members, page by page (a large group's fan-out).
pub trait MemberPages: Sync {
    /// Up to `limit` members after `after`, in user-id order.
    fn members_page(
        &self,
        conversation: &ConversationId,
        after: Option<&UserId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<UserId>, Error>> + Send;
}

/// What was last announced of a user's presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub status: PresenceStatus,
    /// When their last connection closed (kept while they are online again, for the record).
    pub last_seen: Option<DateTime<Utc>>,
    /// When it was announced: a stale announcement never overwrites a later one.
    pub at: DateTime<Utc>,
}

/// Users' announced presence (the live truth is their connections).
pub trait PresenceStore: Sync {
    fn announced(&self, user: &UserId) -> impl Future<Output = Result<Option<Announced>, Error>> + Send;
    /// Records the announcement, unless a later one is already recorded.
    fn announce(&self, user: &UserId, announced: &Announced) -> impl Future<Output = Result<(), Error>> + Send;
}
