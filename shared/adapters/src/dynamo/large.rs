//! Large groups (more than `MAX_SMALL_MEMBERS`): members kept as memberships only (paged through
//! the `byConversation` index), a per-conversation sequence instead of an unread counter per
//! recipient, and read positions counted in a histogram for read-by counts. Every write here costs
//! the same whatever the group's size.
//!
//! - `conversations`: `largeGroup` (true), `memberCount`, `seq` (messages stored since it became large).
//! - `messages`: each message of a large group carries its `seq`; rows under the partition
//!   `reads#<conversationId>` (ids never hold `#`) count the members counted at each read position
//!   (`messageId` = the position, 20 digits, `readers`).
//! - `memberships`: `readSeq` (read up to here: unread = `seq` − `readSeq`) and `readCounted` (the
//!   histogram row this member is counted in, once they read).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use chrono::Utc;
use relaychat_core::Error;
use relaychat_core::ports::{Conversation, Inserted, ReadPlace};
use relaychat_schema::{ChatMessage, ConversationId, MessageId, UserId};

use super::tables::MEMBERSHIPS_BY_CONVERSATION;
use super::{DynamoStore, Guarded, Item, get_n, get_s, is_condition_failed, n, s, time, update_unless_done};
use crate::aws::classify;

/// New memberships per transaction (with the conversation's count: at most 100 items).
const ADD_CHUNK: usize = 99;
/// Tries at a write that lost a race with another writer of the same conversation or member.
const RACE_ATTEMPTS: usize = 8;

fn built<T>(op: &'static str, r: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, Error> {
    r.map_err(|e| Error::rejected(op, e))
}

/// The histogram partition of a conversation's read positions.
fn reads_key(conversation: &ConversationId) -> String {
    format!("reads#{conversation}")
}

/// A read position as a sort key that orders as the number does.
fn position_key(seq: i64) -> String {
    format!("{seq:020}")
}

/// Where a member of a large group has read up to, and where they are counted.
struct Position {
    read: Option<i64>,
    counted: Option<i64>,
}

impl DynamoStore {
    /// The conversation's sequence and last message id (consistent).
    async fn sequence(&self, conversation: &ConversationId) -> Result<(i64, Option<MessageId>), Error> {
        let out = self
            .client
            .get_item()
            .table_name(self.tables.conversations())
            .key("conversationId", s(conversation.as_str()))
            .projection_expression("seq, lastMessageId")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("read sequence", e))?;
        let item = out.item();
        Ok((
            item.and_then(|i| get_n(i, "seq")).unwrap_or(0),
            item.and_then(|i| get_s(i, "lastMessageId"))
                .and_then(|id| id.parse().ok()),
        ))
    }

    /// Stores a large group's message: its place in the sequence, the conversation's sequence and
    /// last message, in one transaction guarded by the message (a repeat changes nothing) and by
    /// the sequence read (a lost race reads it again); then the sender has read up to it.
    pub(crate) async fn insert_large(&self, m: &ChatMessage) -> Result<Inserted, Error> {
        const OP: &str = "store message";
        for _ in 0..RACE_ATTEMPTS {
            let (seq, last) = self.sequence(&m.conversation_id).await?;
            let next = seq + 1;
            let put = self.message_put(m, Some(next))?;
            let mut update = Update::builder()
                .table_name(self.tables.conversations())
                .key("conversationId", s(m.conversation_id.as_str()))
                .expression_attribute_values(":next", n(next));
            let later = last.is_none_or(|l| m.message_id > l);
            update = if later {
                update
                    .update_expression("SET seq = :next, lastMessageId = :id, lastMessage = :m")
                    .expression_attribute_values(":id", s(m.message_id.to_string()))
                    .expression_attribute_values(":m", self.last_message_value(m))
            } else {
                update.update_expression("SET seq = :next")
            };
            update = if seq == 0 {
                update.condition_expression("attribute_not_exists(seq)")
            } else {
                update
                    .condition_expression("seq = :seq")
                    .expression_attribute_values(":seq", n(seq))
            };
            let writes = vec![
                put,
                TransactWriteItem::builder().update(built(OP, update.build())?).build(),
            ];
            match self.transact_guarded(writes, OP).await? {
                Guarded::Committed => {
                    // The message is stored: a failure here only leaves the sender's own message
                    // counted unread for them until they read, not worth a retry of the record.
                    if let Err(e) = self.sender_read_up_to(m, next).await {
                        tracing::warn!(error = %e.chain(), sender = %m.sender_id, "sender's read position not moved");
                    }
                    return Ok(Inserted::Stored {
                        already_read_by: Vec::new(),
                    });
                }
                Guarded::GuardFailed => return Ok(Inserted::Repeat),
                // Another message took this place in the sequence: read it again.
                Guarded::Cancelled(c) if c.failed_conditions() == [1] => continue,
                Guarded::Cancelled(c) => return Err(Error::rejected(OP, c.error)),
            }
        }
        Err(Error::unavailable(
            OP,
            "the sequence kept moving while the message was stored",
        ))
    }

    /// Sending is reading: nothing up to one's own message is unread for its sender.
    async fn sender_read_up_to(&self, m: &ChatMessage, seq: i64) -> Result<(), Error> {
        let result = self
            .client
            .update_item()
            .table_name(self.tables.memberships())
            .key("userId", s(m.sender_id.as_str()))
            .key("conversationId", s(m.conversation_id.as_str()))
            .update_expression("SET readSeq = :seq")
            .condition_expression("attribute_exists(userId) AND (attribute_not_exists(readSeq) OR readSeq < :seq)")
            .expression_attribute_values(":seq", n(seq))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Not a member any more, or already further on.
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(classify("store message", e)),
        }
    }

    /// Adds memberships (each starting at the current sequence: nothing before is unread) and
    /// counts them, in transactions of `ADD_CHUNK`; a small group's list goes first, guarded by
    /// what was read.
    pub(crate) async fn add_large(
        &self,
        current: &Conversation,
        added: &[UserId],
    ) -> Result<Option<Conversation>, Error> {
        const OP: &str = "add members";
        let id = &current.id;
        if !current.is_large() {
            let converted = self
                .client
                .update_item()
                .table_name(self.tables.conversations())
                .key("conversationId", s(id.as_str()))
                .update_expression("REMOVE #members SET largeGroup = :true, memberCount = :count")
                .condition_expression("#members = :old")
                .expression_attribute_names("#members", "members")
                .expression_attribute_values(":old", super::conversations::member_list(&current.members))
                .expression_attribute_values(":true", aws_sdk_dynamodb::types::AttributeValue::Bool(true))
                .expression_attribute_values(":count", n(current.members.len()))
                .send()
                .await;
            match converted {
                Ok(_) => {}
                Err(e) if is_condition_failed(&e) => return Ok(None),
                Err(e) => return Err(classify(OP, e)),
            }
        }
        let (seq, _) = self.sequence(id).await?;
        if !current.is_large() {
            self.carry_unread(id, &current.members, seq).await?;
        }
        let now = Utc::now();
        for chunk in added.chunks(ADD_CHUNK) {
            let mut pending: Vec<&UserId> = chunk.iter().collect();
            for _ in 0..RACE_ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                let mut writes = Vec::with_capacity(pending.len() + 1);
                let count = Update::builder()
                    .table_name(self.tables.conversations())
                    .key("conversationId", s(id.as_str()))
                    .update_expression("ADD memberCount :k")
                    .condition_expression("largeGroup = :true")
                    .expression_attribute_values(":k", n(pending.len()))
                    .expression_attribute_values(":true", aws_sdk_dynamodb::types::AttributeValue::Bool(true))
                    .build();
                writes.push(TransactWriteItem::builder().update(built(OP, count)?).build());
                for user in &pending {
                    let put = Put::builder()
                        .table_name(self.tables.memberships())
                        .item("userId", s(user.as_str()))
                        .item("conversationId", s(id.as_str()))
                        .item("unread", n(0))
                        .item("readSeq", n(seq))
                        .item("joinedAt", time(now))
                        .condition_expression("attribute_not_exists(userId)")
                        .build();
                    writes.push(TransactWriteItem::builder().put(built(OP, put)?).build());
                }
                match self.transact_guarded(writes, OP).await? {
                    Guarded::Committed => pending.clear(),
                    // The conversation is gone, or no longer large (cannot happen: groups never shrink back).
                    Guarded::GuardFailed => return Ok(None),
                    Guarded::Cancelled(c) => {
                        // Those already members are dropped; the rest tried again.
                        let members: Vec<usize> = c.failed_conditions();
                        if members.is_empty() {
                            return Err(Error::rejected(OP, c.error));
                        }
                        let already: Vec<&UserId> =
                            members.iter().filter_map(|i| pending.get(i - 1).copied()).collect();
                        pending.retain(|u| !already.contains(u));
                    }
                }
            }
            if !pending.is_empty() {
                return Err(Error::unavailable(OP, "members kept changing meanwhile"));
            }
        }
        use relaychat_core::ports::ConversationStore;
        self.conversation(id).await
    }

    /// The small group's members keep what they had unread: each position starts that many
    /// places before the sequence (`readSeq` = `seq` − `unread`), so unread = `seq` − `readSeq`
    /// counts on from it. Once per member (a position already there is kept).
    async fn carry_unread(&self, id: &ConversationId, members: &[UserId], seq: i64) -> Result<(), Error> {
        for member in members {
            let carry = self
                .update_membership(member, id)
                .update_expression("SET readSeq = :seq - if_not_exists(unread, :zero)")
                .condition_expression("attribute_exists(userId) AND attribute_not_exists(readSeq)")
                .expression_attribute_values(":seq", n(seq))
                .expression_attribute_values(":zero", n(0));
            update_unless_done(carry, "carry unread into the large group").await?;
        }
        Ok(())
    }

    /// Reading a message from before the group grew (it has no place in the sequence) reads what
    /// was unread of then: a position below zero moves up to it.
    async fn read_before_large(&self, user: &UserId, conversation: &ConversationId) -> Result<(), Error> {
        let read = self
            .update_membership(user, conversation)
            .update_expression("SET readSeq = :zero")
            .condition_expression("readSeq < :zero")
            .expression_attribute_values(":zero", n(0));
        update_unless_done(read, "read from before the group grew").await
    }

    /// Takes a member out: the membership, the count, and their read position's count.
    pub(crate) async fn remove_large(
        &self,
        current: &Conversation,
        member: &UserId,
    ) -> Result<Option<Conversation>, Error> {
        const OP: &str = "remove member";
        let id = &current.id;
        let Some(position) = self.position(member, id).await? else {
            return Ok(None);
        };
        let counted = position.counted;
        let delete = Delete::builder()
            .table_name(self.tables.memberships())
            .key("userId", s(member.as_str()))
            .key("conversationId", s(id.as_str()))
            .condition_expression("attribute_exists(userId)")
            .build();
        let count = Update::builder()
            .table_name(self.tables.conversations())
            .key("conversationId", s(id.as_str()))
            .update_expression("ADD memberCount :minus")
            .expression_attribute_values(":minus", n(-1))
            .build();
        let mut writes = vec![
            TransactWriteItem::builder().delete(built(OP, delete)?).build(),
            TransactWriteItem::builder().update(built(OP, count)?).build(),
        ];
        if let Some(at) = counted {
            writes.push(self.histogram_add(id, at, -1)?);
        }
        if !self.guarded_transaction(writes, OP).await? {
            return Ok(None);
        }
        use relaychat_core::ports::ConversationStore;
        self.conversation(id).await
    }

    fn histogram_add(&self, conversation: &ConversationId, at: i64, by: i64) -> Result<TransactWriteItem, Error> {
        let update = Update::builder()
            .table_name(self.tables.messages())
            .key("conversationId", s(reads_key(conversation)))
            .key("messageId", s(position_key(at)))
            .update_expression("ADD readers :by")
            .expression_attribute_values(":by", n(by))
            .build();
        Ok(TransactWriteItem::builder()
            .update(built("count a read", update)?)
            .build())
    }

    /// The sequence place of the latest large-group message up to `to`, and that message.
    async fn place_up_to(
        &self,
        conversation: &ConversationId,
        to: MessageId,
    ) -> Result<Option<(i64, ReadPlace)>, Error> {
        let out = self
            .client
            .query()
            .table_name(self.tables.messages())
            .key_condition_expression("conversationId = :c AND messageId <= :to")
            .expression_attribute_values(":c", s(conversation.as_str()))
            .expression_attribute_values(":to", s(to.to_string()))
            .projection_expression("seq, messageId, senderId")
            .scan_index_forward(false)
            .limit(20)
            .send()
            .await
            .map_err(|e| classify("read position", e))?;
        Ok(out.items().iter().find_map(|i| {
            Some((
                get_n(i, "seq")?,
                ReadPlace {
                    message: get_s(i, "messageId")?.parse().ok()?,
                    sender: UserId::parse(get_s(i, "senderId")?).ok()?,
                },
            ))
        }))
    }

    /// Moves the reader's position and their count in the histogram, in one transaction guarded
    /// by the position read (a concurrent move reads it again).
    pub(crate) async fn advance_large(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        to: MessageId,
    ) -> Result<Option<ReadPlace>, Error> {
        const OP: &str = "advance read position";
        let Some((place, reached)) = self.place_up_to(conversation, to).await? else {
            self.read_before_large(user, conversation).await?;
            return Ok(None);
        };
        for _ in 0..RACE_ATTEMPTS {
            let Some(Position { read, counted }) = self.position(user, conversation).await? else {
                return Ok(None); // not a member (any more)
            };
            if counted.is_some_and(|c| c >= place) {
                return Ok(None);
            }
            let mut update = Update::builder()
                .table_name(self.tables.memberships())
                .key("userId", s(user.as_str()))
                .key("conversationId", s(conversation.as_str()))
                .expression_attribute_values(":at", n(place));
            // The unread position moves too, unless sending took it further already.
            update = if read.is_some_and(|r| r >= place) {
                update.update_expression("SET readCounted = :at")
            } else {
                update.update_expression("SET readCounted = :at, readSeq = :at")
            };
            update = match counted {
                Some(c) => update
                    .condition_expression("readCounted = :was")
                    .expression_attribute_values(":was", n(c)),
                None => update.condition_expression("attribute_exists(userId) AND attribute_not_exists(readCounted)"),
            };
            let mut writes = vec![
                TransactWriteItem::builder().update(built(OP, update.build())?).build(),
                self.histogram_add(conversation, place, 1)?,
            ];
            if let Some(c) = counted {
                writes.push(self.histogram_add(conversation, c, -1)?);
            }
            if self.guarded_transaction(writes, OP).await? {
                return Ok(Some(reached));
            }
        }
        Err(Error::unavailable(OP, "the read position kept moving"))
    }

    /// For each message (by `sender`), the members counted at its place or beyond, the sender
    /// aside.
    pub(crate) async fn read_by_counts(
        &self,
        conversation: &ConversationId,
        sender: &UserId,
        messages: &[MessageId],
    ) -> Result<HashMap<MessageId, u64>, Error> {
        const OP: &str = "read-by counts";
        let keys: Vec<Item> = messages
            .iter()
            .map(|m| {
                [
                    ("conversationId".to_owned(), s(conversation.as_str())),
                    ("messageId".to_owned(), s(m.to_string())),
                ]
                .into_iter()
                .collect()
            })
            .collect();
        let places: HashMap<MessageId, i64> = self
            .batch_get_keys(&self.tables.messages(), keys, OP)
            .await?
            .iter()
            .filter_map(|i| Some((get_s(i, "messageId")?.parse().ok()?, get_n(i, "seq")?)))
            .collect();
        let Some(first) = places.values().min().copied() else {
            return Ok(HashMap::new());
        };
        let rows = super::query_items(
            self.client
                .query()
                .table_name(self.tables.messages())
                .key_condition_expression("conversationId = :c AND messageId >= :from")
                .expression_attribute_values(":c", s(reads_key(conversation)))
                .expression_attribute_values(":from", s(position_key(first))),
            OP,
        )
        .await?;
        let histogram: Vec<(i64, i64)> = rows
            .iter()
            .filter_map(|r| Some((get_s(r, "messageId")?.parse().ok()?, get_n(r, "readers")?)))
            .collect();
        let own = self.position(sender, conversation).await?.and_then(|p| p.counted);
        Ok(places
            .into_iter()
            .map(|(id, place)| {
                let readers: i64 = histogram.iter().filter(|(at, _)| *at >= place).map(|(_, k)| k).sum();
                let sender_counted = i64::from(own.is_some_and(|c| c >= place));
                (id, u64::try_from(readers - sender_counted).unwrap_or(0))
            })
            .collect())
    }

    pub(crate) async fn is_member_of(&self, conversation: &ConversationId, user: &UserId) -> Result<bool, Error> {
        Ok(self.position(user, conversation).await?.is_some())
    }

    /// A member's read positions (consistent); `None` when they are not a member.
    async fn position(&self, user: &UserId, conversation: &ConversationId) -> Result<Option<Position>, Error> {
        let item = self
            .membership(user, conversation, "userId, readSeq, readCounted", "read membership")
            .await?;
        Ok(item.map(|i| Position {
            read: get_n(&i, "readSeq"),
            counted: get_n(&i, "readCounted"),
        }))
    }

    pub(crate) async fn members_after(
        &self,
        conversation: &ConversationId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserId>, Error> {
        let query = |start: Option<Item>, room: i32| {
            let query = self
                .client
                .query()
                .table_name(self.tables.memberships())
                .index_name(MEMBERSHIPS_BY_CONVERSATION)
                .expression_attribute_values(":c", s(conversation.as_str()))
                .limit(room)
                .set_exclusive_start_key(start);
            match after {
                Some(a) => query
                    .key_condition_expression("conversationId = :c AND userId > :after")
                    .expression_attribute_values(":after", s(a.as_str())),
                None => query.key_condition_expression("conversationId = :c"),
            }
        };
        super::query_up_to(limit, "page members", query, |item| {
            get_s(item, "userId").and_then(|u| UserId::parse(u).ok())
        })
        .await
    }
}
