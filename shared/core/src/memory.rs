//! In-memory fakes of every port, for unit tests of the rules and handlers. Never used in place
//! of the real services outside unit tests.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use relaychat_schema::kafka::RawRecord;
use relaychat_schema::protocol::{ConversationSummary, MessageView};
use relaychat_schema::{
    Change, ChatMessage, ClientMessageId, ConnectionId, ConversationId, DeliveryStatus, DeviceToken, DisplayName,
    MessageChange, MessageContent, MessageId, MessageStatusUpdate, Notification, SCHEMA_VERSION, Title,
    TypingIndicator, UserId,
};

use crate::Error;
use crate::limits::{Budget, Limited};
use crate::ports::*;

fn seq_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[derive(Default)]
struct State {
    messages: BTreeMap<(String, MessageId), ChatMessage>,
    changes: HashMap<MessageId, Changed>,
    /// Large groups: their members, messages stored (the sequence), each message's place in it,
    /// each member's position (unread is the difference) and where their reads are counted.
    large_members: BTreeMap<String, BTreeSet<UserId>>,
    sequence: HashMap<String, u64>,
    message_seq: HashMap<MessageId, u64>,
    /// Below zero for a member of the small group it grew from: that many messages of before
    /// were unread.
    read_seq: HashMap<(String, String), i64>,
    counted_read: HashMap<(String, String), u64>,
    last_message: HashMap<String, MessageId>,
    unread: HashMap<(String, String), i64>,
    cursors: HashMap<(String, String), MessageId>,
    progress: HashMap<(String, String), MessageId>,
    failing_frame_posts: usize,
    receipts: HashMap<(MessageId, String), DeliveryStatus>,
    connections: Vec<(String, String)>,
    gone: HashSet<String>,
    frames: Vec<(String, Vec<u8>)>,
    published: Vec<(String, String, Vec<u8>)>,
    fail_publishing: bool,
    dead_letters: Vec<(RawRecord, String)>,
    notifications: HashMap<String, (bool, Vec<String>)>,
    rejected_tokens: HashSet<String>,
    busy_tokens: HashMap<String, usize>,
    devices: Vec<Device>,
    unregistered: HashSet<String>,
    pushes: Vec<String>,
    fail_pushes: bool,
    counters: HashMap<(String, String), i64>,
    counted: HashSet<String>,
    fail_counters: bool,
    largest_apply: usize,
    conversations: BTreeMap<String, Conversation>,
    identities: HashMap<String, Identity>,
    budgets: HashMap<(String, Limited), (i64, u32)>,
    requests: HashMap<(String, String), ConversationId>,
    presence: HashMap<String, Announced>,
    direct: HashMap<String, ConversationId>,
    send_claims: HashMap<(String, String), SendClaim>,
}

/// What the sender did to a stored message since.
#[derive(Default, Clone)]
struct Changed {
    edited: Option<(DateTime<Utc>, String)>,
    deleted_at: Option<DateTime<Utc>>,
}

/// Every port at once, over plain collections.
#[derive(Default)]
pub struct Memory(Mutex<State>);

fn key(a: &impl AsRef<str>, b: &impl AsRef<str>) -> (String, String) {
    (a.as_ref().to_owned(), b.as_ref().to_owned())
}

impl Memory {
    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already; keep the data readable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn messages_in(&self, conversation: &str) -> Vec<MessageId> {
        self.state()
            .messages
            .keys()
            .filter(|(c, _)| c == conversation)
            .map(|(_, m)| *m)
            .collect()
    }
    pub fn unread(&self, user: &str, conversation: &str) -> i64 {
        self.state()
            .unread
            .get(&key(&user, &conversation))
            .copied()
            .unwrap_or(0)
    }
    pub fn last_message(&self, conversation: &str) -> Option<MessageId> {
        self.state().last_message.get(conversation).copied()
    }
    pub fn receipt(&self, message: MessageId, user: &str) -> Option<DeliveryStatus> {
        self.state().receipts.get(&(message, user.to_owned())).copied()
    }
    pub fn connect(&self, user: &str, connection: &str) {
        self.state().connections.push(key(&user, &connection));
    }
    /// Drops a conversation behind the ports' back (to show a cache does not read it again).
    pub fn forget_conversation(&self, id: &ConversationId) {
        self.state().conversations.remove(id.as_str());
    }

    pub fn mark_gone(&self, connection: &str) {
        self.state().gone.insert(connection.to_owned());
    }
    pub fn connections(&self, user: &str) -> Vec<String> {
        self.state()
            .connections
            .iter()
            .filter(|(u, _)| u == user)
            .map(|(_, c)| c.clone())
            .collect()
    }
    pub fn frames_to(&self, connection: &str) -> Vec<serde_json::Value> {
        let state = self.state();
        state
            .frames
            .iter()
            .filter(|(c, _)| c == connection)
            .map(|(_, f)| serde_json::from_slice(f).unwrap_or(serde_json::Value::Null))
            .collect()
    }
    pub fn published(&self, topic: &str) -> Vec<(String, serde_json::Value)> {
        let state = self.state();
        state
            .published
            .iter()
            .filter(|(t, _, _)| t == topic)
            .map(|(_, k, v)| (k.clone(), serde_json::from_slice(v).unwrap_or(serde_json::Value::Null)))
            .collect()
    }
    /// The next `n` frame posts fail (as a throttled or unreachable `@connections` would).
    pub fn fail_frame_posts(&self, n: usize) {
        self.state().failing_frame_posts = n;
    }
    pub fn fail_publishing(&self) {
        self.state().fail_publishing = true;
    }
    pub fn dead_letters(&self) -> Vec<(RawRecord, String)> {
        self.state().dead_letters.clone()
    }
    pub fn register_device(&self, user: &str, token: &str) {
        let device = Device {
            user: self::user(user),
            token: DeviceToken::parse(token).expect("test device token"),
            platform: "fcm".into(),
        };
        let mut s = self.state();
        s.devices.retain(|d| d.token != device.token);
        s.devices.push(device);
    }
    pub fn reject_token(&self, token: &str) {
        self.state().rejected_tokens.insert(token.to_owned());
    }
    /// The next `times` sends to this token fail retryably.
    pub fn busy_token(&self, token: &str, times: usize) {
        self.state().busy_tokens.insert(token.to_owned(), times);
    }
    pub fn unregister_token(&self, token: &str) {
        self.state().unregistered.insert(token.to_owned());
    }
    pub fn pushes(&self) -> Vec<String> {
        self.state().pushes.clone()
    }
    pub fn device_tokens(&self, user: &str) -> Vec<String> {
        self.state()
            .devices
            .iter()
            .filter(|d| d.user.as_str() == user)
            .map(|d| d.token.to_string())
            .collect()
    }
    pub fn fail_pushes(&self, fail: bool) {
        self.state().fail_pushes = fail;
    }
    pub fn counter(&self, counter: &str, field: &str) -> i64 {
        self.state().counters.get(&key(&counter, &field)).copied().unwrap_or(0)
    }
    pub fn fail_counters(&self, fail: bool) {
        self.state().fail_counters = fail;
    }
    /// The most items (records remembered plus counter rows) one atomic apply touched.
    pub fn largest_apply(&self) -> usize {
        self.state().largest_apply
    }
}

fn outage(operation: &'static str) -> Error {
    Error::unavailable(operation, "simulated outage")
}

impl MessageStore for Memory {
    async fn insert_message(&self, m: &ChatMessage) -> Result<Inserted, Error> {
        let mut s = self.state();
        let k = (m.conversation_id.to_string(), m.message_id);
        if s.messages.contains_key(&k) {
            return Ok(Inserted::Repeat);
        }
        s.messages.insert(k, m.clone());
        if m.large_group {
            // Constant work: the next place in the sequence; the sender has read up to it.
            let n = {
                let seq = s.sequence.entry(m.conversation_id.to_string()).or_default();
                *seq += 1;
                *seq
            };
            s.message_seq.insert(m.message_id, n);
            let position = s.read_seq.entry(key(&m.sender_id, &m.conversation_id)).or_default();
            *position = (*position).max(seq_i64(n));
            let last = s
                .last_message
                .entry(m.conversation_id.to_string())
                .or_insert(m.message_id);
            *last = (*last).max(m.message_id);
            return Ok(Inserted::Stored {
                already_read_by: Vec::new(),
            });
        }
        let mut already_read_by = Vec::new();
        for r in m.recipients.iter().filter(|r| **r != m.sender_id) {
            let membership = key(r, &m.conversation_id);
            if s.cursors.get(&membership).is_some_and(|c| *c >= m.message_id) {
                s.receipts.insert((m.message_id, r.to_string()), DeliveryStatus::Read);
                already_read_by.push(r.clone());
            } else {
                *s.unread.entry(membership).or_default() += 1;
            }
        }
        let last = s
            .last_message
            .entry(m.conversation_id.to_string())
            .or_insert(m.message_id);
        *last = (*last).max(m.message_id);
        Ok(Inserted::Stored { already_read_by })
    }
    async fn set_last_message(&self, m: &ChatMessage) -> Result<(), Error> {
        let mut s = self.state();
        let last = s
            .last_message
            .entry(m.conversation_id.to_string())
            .or_insert(m.message_id);
        *last = (*last).max(m.message_id);
        Ok(())
    }
    async fn apply_change(&self, change: &MessageChange) -> Result<ChangeOutcome, Error> {
        let mut s = self.state();
        if !s
            .messages
            .contains_key(&(change.conversation_id.to_string(), change.message_id))
        {
            return Ok(ChangeOutcome::Missing);
        }
        let changed = s.changes.entry(change.message_id).or_default();
        if changed.deleted_at.is_some() {
            return Ok(ChangeOutcome::Superseded);
        }
        match &change.change {
            Change::Deleted => changed.deleted_at = Some(change.changed_at),
            Change::Edited { content } => {
                if changed.edited.as_ref().is_some_and(|(at, _)| *at > change.changed_at) {
                    return Ok(ChangeOutcome::Superseded);
                }
                changed.edited = Some((change.changed_at, content.to_string()));
            }
        }
        Ok(ChangeOutcome::Applied)
    }
    async fn messages_between(
        &self,
        conversation: &ConversationId,
        after: Option<MessageId>,
        up_to: MessageId,
        limit: usize,
    ) -> Result<Vec<(MessageId, UserId)>, Error> {
        let s = self.state();
        Ok(s.messages
            .iter()
            .filter(|((c, id), _)| c == conversation.as_str() && after.is_none_or(|a| *id > a) && *id <= up_to)
            .take(limit)
            .map(|((_, id), m)| (*id, m.sender_id.clone()))
            .collect())
    }
}

impl ReadState for Memory {
    async fn read_position(&self, user: &UserId, conversation: &ConversationId) -> Result<ReadPosition, Error> {
        let s = self.state();
        let k = key(user, conversation);
        Ok(ReadPosition {
            cursor: s.cursors.get(&k).copied(),
            progress: s.progress.get(&k).copied(),
        })
    }
    async fn save_read_progress(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        to: MessageId,
    ) -> Result<(), Error> {
        let mut s = self.state();
        let p = s.progress.entry(key(user, conversation)).or_insert(to);
        *p = (*p).max(to);
        Ok(())
    }
    async fn advance_read_position(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        to: MessageId,
    ) -> Result<Option<ReadPlace>, Error> {
        let mut s = self.state();
        // The place of the latest message up to `to` (read up to X: wherever X itself is).
        let Some((n, place)) = s
            .messages
            .iter()
            .rev()
            .filter(|((c, id), _)| c == conversation.as_str() && *id <= to)
            .find_map(|((_, id), m)| {
                let n = s.message_seq.get(id).copied()?;
                Some((
                    n,
                    ReadPlace {
                        message: *id,
                        sender: m.sender_id.clone(),
                    },
                ))
            })
        else {
            // A message from before the group grew: what was unread of then is read.
            if let Some(position) = s.read_seq.get_mut(&key(user, conversation)) {
                *position = (*position).max(0);
            }
            return Ok(None);
        };
        let k = key(user, conversation);
        let position = s.read_seq.entry(k.clone()).or_default();
        *position = (*position).max(seq_i64(n));
        let counted = s.counted_read.entry(k).or_default();
        let moved = *counted < n;
        *counted = (*counted).max(n);
        Ok(moved.then_some(place))
    }
    async fn advance_read_cursor(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        to: MessageId,
    ) -> Result<(), Error> {
        let mut s = self.state();
        let cursor = s.cursors.entry(key(user, conversation)).or_insert(to);
        *cursor = (*cursor).max(to);
        let cursor = *cursor;
        let unread = s
            .messages
            .iter()
            .filter(|((c, id), m)| c == conversation.as_str() && *id > cursor && m.sender_id != *user)
            .count() as i64;
        s.unread.insert(key(user, conversation), unread);
        Ok(())
    }
}

impl Receipts for Memory {
    async fn advance_receipt(
        &self,
        message: MessageId,
        _conversation: &ConversationId,
        recipient: &UserId,
        status: DeliveryStatus,
        _at: DateTime<Utc>,
    ) -> Result<ReceiptMove, Error> {
        let mut s = self.state();
        let current = s
            .receipts
            .entry((message, recipient.to_string()))
            .or_insert(DeliveryStatus::Sent);
        if *current == status {
            return Ok(ReceiptMove::AlreadyThere);
        }
        if *current > status {
            return Ok(ReceiptMove::Beyond);
        }
        *current = status;
        Ok(ReceiptMove::Moved)
    }
    async fn mark_read(
        &self,
        _conversation: &ConversationId,
        reader: &UserId,
        messages: &[MessageId],
        _at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut s = self.state();
        for m in messages {
            s.receipts.insert((*m, reader.to_string()), DeliveryStatus::Read);
        }
        Ok(())
    }
}

impl ConnectionDirectory for Memory {
    async fn connections_of(&self, user: &UserId) -> Result<Vec<ConnectionId>, Error> {
        let s = self.state();
        Ok(s.connections
            .iter()
            .filter(|(u, _)| u == user.as_str())
            .filter_map(|(_, c)| ConnectionId::parse(c.clone()).ok())
            .collect())
    }
    async fn remove_connection(&self, connection: &ConnectionId) -> Result<(), Error> {
        self.state().connections.retain(|(_, c)| c != connection.as_str());
        Ok(())
    }
}

impl PresenceStore for Memory {
    async fn announced(&self, user: &UserId) -> Result<Option<Announced>, Error> {
        Ok(self.state().presence.get(user.as_str()).cloned())
    }
    async fn announce(&self, user: &UserId, announced: &Announced) -> Result<(), Error> {
        let mut s = self.state();
        let stored = s.presence.entry(user.to_string()).or_insert_with(|| announced.clone());
        if stored.at <= announced.at {
            *stored = announced.clone();
        }
        Ok(())
    }
}

impl FramePoster for Memory {
    async fn post(&self, connection: &ConnectionId, frame: &[u8]) -> Result<PostOutcome, Error> {
        let mut s = self.state();
        if s.failing_frame_posts > 0 {
            s.failing_frame_posts -= 1;
            return Err(outage("post frame"));
        }
        if s.gone.contains(connection.as_str()) {
            return Ok(PostOutcome::Gone);
        }
        s.frames.push((connection.to_string(), frame.to_vec()));
        Ok(PostOutcome::Delivered)
    }
}

impl Publisher for Memory {
    async fn publish(&self, topic: &str, key: &str, value: Vec<u8>) -> Result<(), Error> {
        let mut s = self.state();
        if s.fail_publishing {
            return Err(outage("publish"));
        }
        s.published.push((topic.to_owned(), key.to_owned(), value));
        Ok(())
    }
    fn publish_best_effort(&self, topic: &str, key: &str, value: Vec<u8>) -> Result<(), Error> {
        let mut s = self.state();
        if s.fail_publishing {
            // Queued, then lost: as librdkafka drops a record whose broker never came back.
            return Ok(());
        }
        s.published.push((topic.to_owned(), key.to_owned(), value));
        Ok(())
    }
}

impl DeadLetters for Memory {
    async fn dead_letter(&self, record: &RawRecord, reason: &str) -> Result<(), Error> {
        let mut s = self.state();
        if s.fail_publishing {
            return Err(outage("dead-letter"));
        }
        s.dead_letters.push((record.clone(), reason.to_owned()));
        Ok(())
    }
}

impl NotificationLog for Memory {
    async fn begin(&self, n: &Notification) -> Result<Begun, Error> {
        let mut s = self.state();
        let entry = s
            .notifications
            .entry(format!("{}/{}", n.user_id, n.notification_id))
            .or_insert((false, Vec::new()));
        Ok(if entry.0 {
            Begun::AlreadySent
        } else {
            Begun::Send {
                already_sent_to: entry.1.clone(),
            }
        })
    }
    async fn sent_to(&self, n: &Notification, device: &Device) -> Result<(), Error> {
        let mut s = self.state();
        let entry = s
            .notifications
            .entry(format!("{}/{}", n.user_id, n.notification_id))
            .or_insert((false, Vec::new()));
        entry.1.push(device.token.to_string());
        Ok(())
    }
    async fn mark_sent(&self, n: &Notification, _devices: usize) -> Result<(), Error> {
        let mut s = self.state();
        s.notifications
            .entry(format!("{}/{}", n.user_id, n.notification_id))
            .or_insert((false, Vec::new()))
            .0 = true;
        Ok(())
    }
}

impl DeviceStore for Memory {
    async fn register_device(&self, device: &Device) -> Result<(), Error> {
        let mut s = self.state();
        // One owner per token.
        s.devices.retain(|d| d.token != device.token);
        s.devices.push(device.clone());
        Ok(())
    }
    async fn devices_of(&self, user: &UserId) -> Result<Vec<Device>, Error> {
        let mut devices: Vec<Device> = self
            .state()
            .devices
            .iter()
            .filter(|d| d.user == *user)
            .cloned()
            .collect();
        devices.sort_by(|a, b| a.token.cmp(&b.token));
        Ok(devices)
    }
    async fn remove_device(&self, device: &Device) -> Result<(), Error> {
        self.state()
            .devices
            .retain(|d| !(d.user == device.user && d.token == device.token));
        Ok(())
    }
}

impl PushSender for Memory {
    async fn send(&self, device: &Device, _n: &Notification) -> Result<PushResult, Error> {
        let mut s = self.state();
        if s.fail_pushes {
            return Err(outage("push"));
        }
        let token = device.token.to_string();
        if let Some(left) = s.busy_tokens.get_mut(&token)
            && *left > 0
        {
            *left -= 1;
            return Err(outage("push"));
        }
        if s.unregistered.contains(&token) {
            return Ok(PushResult::Unregistered);
        }
        if s.rejected_tokens.contains(&token) {
            return Ok(PushResult::TokenRejected("invalid registration token".into()));
        }
        s.pushes.push(token);
        Ok(PushResult::Sent)
    }
}

impl AnalyticsStore for Memory {
    async fn count_once(&self, records: &[Counted]) -> Result<usize, Error> {
        let mut s = self.state();
        if s.fail_counters {
            return Err(outage("counters"));
        }
        let fresh: Vec<&Counted> = records.iter().filter(|r| !s.counted.contains(&r.id)).collect();
        let rows: HashSet<&str> = fresh
            .iter()
            .flat_map(|r| r.keys.iter().map(|k| k.counter.as_str()))
            .collect();
        let items = fresh.len() + rows.len();
        s.largest_apply = s.largest_apply.max(items);
        let mut increments = Vec::new();
        for r in &fresh {
            for k in &r.keys {
                increments.push((k.counter.clone(), k.field.clone()));
            }
        }
        for r in &fresh {
            s.counted.insert(r.id.clone());
        }
        for k in increments {
            *s.counters.entry(k).or_default() += 1;
        }
        Ok(fresh.len())
    }
    async fn counters(&self, rows: &[String]) -> Result<BTreeMap<String, BTreeMap<String, i64>>, Error> {
        let s = self.state();
        if s.fail_counters {
            return Err(outage("counters"));
        }
        let mut out: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for ((row, field), value) in &s.counters {
            if rows.contains(row) {
                out.entry(row.clone()).or_default().insert(field.clone(), *value);
            }
        }
        Ok(out)
    }
}

impl ConnectionRegistry for Memory {
    async fn register(&self, connection: &ConnectionId, identity: &Identity) -> Result<(), Error> {
        let mut s = self.state();
        s.identities.insert(connection.to_string(), identity.clone());
        s.connections.push((identity.user.to_string(), connection.to_string()));
        Ok(())
    }
    async fn unregister(&self, connection: &ConnectionId) -> Result<(), Error> {
        let mut s = self.state();
        s.identities.remove(connection.as_str());
        s.connections.retain(|(_, c)| c != connection.as_str());
        Ok(())
    }
    async fn identity_of(&self, connection: &ConnectionId) -> Result<Option<Identity>, Error> {
        Ok(self.state().identities.get(connection.as_str()).cloned())
    }
    async fn allow(&self, budget: Budget<'_>, action: Limited, now: DateTime<Utc>) -> Result<bool, Error> {
        let mut s = self.state();
        let row = match budget {
            // As in DynamoDB: the budget lives on the connection's row; a gone connection has none.
            Budget::Connection(connection) if !s.identities.contains_key(connection.as_str()) => return Ok(false),
            Budget::Connection(connection) => connection.to_string(),
            Budget::User(user) => format!("user#{user}"),
        };
        let window = action.window(now);
        let slot = s.budgets.entry((row, action)).or_insert((window, 0));
        if slot.0 != window {
            *slot = (window, 0);
        }
        if slot.1 >= action.limit().max {
            return Ok(false);
        }
        slot.1 += 1;
        Ok(true)
    }
}

impl ConversationStore for Memory {
    async fn create_conversation(
        &self,
        c: &Conversation,
        request: Option<&ClientMessageId>,
    ) -> Result<Conversation, Error> {
        let mut s = self.state();
        if let Some(request) = request {
            let k = key(&c.created_by, request);
            if let Some(earlier) = s.requests.get(&k).and_then(|id| s.conversations.get(id.as_str())) {
                return Ok(earlier.clone());
            }
        }
        if let Some(pair) = c.direct_pair()
            && let Some(existing) = s.direct.get(&pair).and_then(|id| s.conversations.get(id.as_str()))
        {
            return Ok(existing.clone());
        }
        if let Some(request) = request {
            s.requests.insert(key(&c.created_by, request), c.id.clone());
        }
        if let Some(pair) = c.direct_pair() {
            s.direct.insert(pair, c.id.clone());
        }
        s.conversations.insert(c.id.to_string(), c.clone());
        Ok(c.clone())
    }
    async fn conversation(&self, id: &ConversationId) -> Result<Option<Conversation>, Error> {
        Ok(self.state().conversations.get(id.as_str()).cloned())
    }
    async fn add_to_large(&self, current: &Conversation, added: &[UserId]) -> Result<Option<Conversation>, Error> {
        let mut s = self.state();
        let Some(stored) = s.conversations.get(current.id.as_str()).cloned() else {
            return Ok(None);
        };
        // A small group's list, as read, is the guard of its growing large.
        if !current.is_large() && (stored.is_large() || stored.members != current.members) {
            return Ok(None);
        }
        let id = current.id.to_string();
        let at = seq_i64(s.sequence.get(&id).copied().unwrap_or(0));
        if !stored.is_large() {
            // The small group's members keep what they had unread: their position starts that
            // far before the sequence's.
            for member in &stored.members {
                let k = key(member, &current.id);
                let unread = s.unread.get(&k).copied().unwrap_or(0);
                s.read_seq.entry(k).or_insert(at - unread);
            }
        }
        let members = s.large_members.entry(id.clone()).or_default();
        members.extend(stored.members.iter().cloned());
        let joined: Vec<UserId> = added.iter().filter(|u| members.insert((*u).clone())).cloned().collect();
        let count = members.len();
        for user in joined {
            // Nothing from before they joined is unread.
            s.read_seq.insert(key(&user, &current.id), at);
        }
        let c = s.conversations.get_mut(&id).expect("read above");
        c.members.clear();
        c.large = Some(count);
        Ok(Some(c.clone()))
    }
    async fn remove_from_large(&self, current: &Conversation, member: &UserId) -> Result<Option<Conversation>, Error> {
        let mut s = self.state();
        let id = current.id.to_string();
        if !s.large_members.get_mut(&id).is_some_and(|m| m.remove(member)) {
            return Ok(None);
        }
        let count = s.large_members.get(&id).map_or(0, BTreeSet::len);
        s.read_seq.remove(&key(member, &current.id));
        s.counted_read.remove(&key(member, &current.id));
        Ok(s.conversations.get_mut(&id).map(|c| {
            c.large = Some(count);
            c.clone()
        }))
    }
    async fn is_member(&self, conversation: &ConversationId, user: &UserId) -> Result<bool, Error> {
        let s = self.state();
        Ok(s.large_members
            .get(conversation.as_str())
            .is_some_and(|m| m.contains(user))
            || s.conversations
                .get(conversation.as_str())
                .is_some_and(|c| c.members.contains(user)))
    }
    async fn read_by(
        &self,
        conversation: &ConversationId,
        sender: &UserId,
        messages: &[MessageId],
    ) -> Result<HashMap<MessageId, u64>, Error> {
        let s = self.state();
        Ok(messages
            .iter()
            .filter_map(|m| {
                let n = *s.message_seq.get(m)?;
                let readers = s
                    .counted_read
                    .iter()
                    .filter(|((user, conv), at)| conv == conversation.as_str() && user != sender.as_str() && **at >= n)
                    .count();
                Some((*m, readers as u64))
            })
            .collect())
    }
    async fn set_members(&self, current: &Conversation, members: &[UserId]) -> Result<Option<Conversation>, Error> {
        let mut s = self.state();
        let Some(stored) = s.conversations.get_mut(current.id.as_str()) else {
            return Ok(None);
        };
        if stored.members != current.members {
            return Ok(None);
        }
        stored.members = members.to_vec();
        Ok(Some(stored.clone()))
    }
    async fn claim_send(&self, claim: &SendClaim) -> Result<Option<SendClaim>, Error> {
        let mut s = self.state();
        let k = key(&claim.sender, &claim.key);
        if let Some(earlier) = s.send_claims.get(&k) {
            return Ok(Some(earlier.clone()));
        }
        s.send_claims.insert(k, claim.clone());
        Ok(None)
    }
    async fn receipt_statuses(
        &self,
        messages: &[MessageId],
        recipients: &[UserId],
    ) -> Result<HashMap<MessageId, DeliveryStatus>, Error> {
        let s = self.state();
        Ok(status_reached_by_all(messages, recipients, |m, r| {
            s.receipts.get(&(m, r.to_string())).copied()
        }))
    }
    async fn set_title(&self, id: &ConversationId, title: Option<&Title>) -> Result<Option<Conversation>, Error> {
        let mut s = self.state();
        Ok(s.conversations.get_mut(id.as_str()).map(|c| {
            c.title = title.cloned();
            c.clone()
        }))
    }
    async fn conversations_of(&self, user: &UserId) -> Result<Vec<ConversationSummary>, Error> {
        let s = self.state();
        let in_large = |c: &Conversation| s.large_members.get(c.id.as_str()).is_some_and(|m| m.contains(user));
        Ok(s.conversations
            .values()
            .filter(|c| c.members.contains(user) || in_large(c))
            .map(|c| ConversationSummary {
                conversation_id: c.id.clone(),
                title: c.title.clone(),
                members: c.members.clone(),
                member_count: c.member_count(),
                unread: match c.large {
                    // A large group's unread: messages stored since the member's position.
                    Some(_) => {
                        let at = s.read_seq.get(&key(user, &c.id)).copied().unwrap_or(0);
                        let stored = seq_i64(s.sequence.get(c.id.as_str()).copied().unwrap_or(0));
                        (stored - at).max(0)
                    }
                    None => s.unread.get(&key(user, &c.id)).copied().unwrap_or(0),
                },
                last_message: s
                    .last_message
                    .get(c.id.as_str())
                    .and_then(|id| s.messages.get(&(c.id.to_string(), *id)))
                    .map(|m| view(&s, m)),
            })
            .collect())
    }
    async fn history(
        &self,
        conversation: &ConversationId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<(Vec<MessageView>, Option<MessageId>), Error> {
        let s = self.state();
        let older: Vec<&ChatMessage> = s
            .messages
            .iter()
            .rev()
            .filter(|((c, id), _)| c == conversation.as_str() && before.is_none_or(|b| *id < b))
            .map(|(_, m)| m)
            .collect();
        let page: Vec<MessageView> = older.iter().take(limit as usize).map(|m| view(&s, m)).collect();
        let next = (older.len() > page.len())
            .then(|| page.last().map(|m| m.message_id))
            .flatten();
        Ok((page, next))
    }
    async fn message(&self, conversation: &ConversationId, id: MessageId) -> Result<Option<MessageView>, Error> {
        let s = self.state();
        Ok(s.messages.get(&(conversation.to_string(), id)).map(|m| view(&s, m)))
    }
}

impl MemberPages for Memory {
    async fn members_page(
        &self,
        conversation: &ConversationId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserId>, Error> {
        let s = self.state();
        let all: BTreeSet<UserId> = match s.large_members.get(conversation.as_str()) {
            Some(members) => members.clone(),
            None => s
                .conversations
                .get(conversation.as_str())
                .map(|c| c.members.iter().cloned().collect())
                .unwrap_or_default(),
        };
        Ok(all
            .into_iter()
            .filter(|u| after.is_none_or(|a| u > a))
            .take(limit)
            .collect())
    }
}

fn view(s: &State, m: &ChatMessage) -> MessageView {
    let changed = s.changes.get(&m.message_id).cloned().unwrap_or_default();
    let content = match (&changed.deleted_at, &changed.edited) {
        (Some(_), _) => String::new(),
        (None, Some((_, text))) => text.clone(),
        (None, None) => m.content.to_string(),
    };
    MessageView {
        message_id: m.message_id,
        conversation_id: m.conversation_id.clone(),
        sender_id: m.sender_id.clone(),
        sender_name: m.sender_name.to_string(),
        content,
        sent_at: m.sent_at,
        edited_at: changed.edited.map(|(at, _)| at),
        deleted_at: changed.deleted_at,
        status: None,
        read_by: None,
    }
}

// Builders for test data. They take known-good literals: a bad one is a bug in the test itself.

pub fn user(id: &str) -> UserId {
    UserId::parse(id).expect("test user id")
}

pub fn sample_message(conversation: &str, sender: &str, recipients: &[&str]) -> ChatMessage {
    ChatMessage {
        schema_version: SCHEMA_VERSION,
        message_id: MessageId::new(),
        conversation_id: ConversationId::parse(conversation).expect("test conversation id"),
        sender_id: user(sender),
        sender_name: DisplayName::parse(sender.to_uppercase()).expect("test name"),
        content: MessageContent::parse("hello").expect("test content"),
        client_message_id: None,
        sent_at: Utc::now(),
        recipients: recipients.iter().map(|r| user(r)).collect(),
        large_group: false,
        fanout_after: None,
    }
}

/// The sender's change to `m`, `secs` seconds after it was sent.
pub fn sample_change(m: &ChatMessage, change: Change, secs: i64) -> MessageChange {
    MessageChange {
        schema_version: m.schema_version,
        message_id: m.message_id,
        conversation_id: m.conversation_id.clone(),
        sender_id: m.sender_id.clone(),
        change,
        changed_at: m.sent_at + chrono::Duration::seconds(secs),
        recipients: m.recipients.clone(),
        large_group: m.large_group,
        fanout_after: None,
    }
}

pub fn status_update(m: &ChatMessage, reader: &str, status: DeliveryStatus) -> MessageStatusUpdate {
    MessageStatusUpdate {
        schema_version: SCHEMA_VERSION,
        message_id: m.message_id,
        conversation_id: m.conversation_id.clone(),
        user_id: user(reader),
        sender_id: Some(m.sender_id.clone()),
        status,
        at: Utc::now(),
        large_group: false,
    }
}

pub fn typing(conversation: &str, typist: &str, members: &[&str]) -> TypingIndicator {
    TypingIndicator {
        schema_version: SCHEMA_VERSION,
        conversation_id: ConversationId::parse(conversation).expect("test conversation id"),
        user_id: user(typist),
        is_typing: true,
        at: Utc::now(),
        recipients: members.iter().map(|m| user(m)).collect(),
    }
}

#[cfg(test)]
mod contract {
    // The in-memory fakes keep the same contract as the DynamoDB adapter (see `crate::contract`).
    crate::port_contract_tests!(super::Memory::default());
}
