//! Messages, last message per conversation, unread counts and read cursors.

use aws_sdk_dynamodb::types::{AttributeValue, Put, Select, TransactWriteItem, Update};
use relaychat_core::Error;
use relaychat_core::ports::{ChangeOutcome, Inserted, MessageStore, ReadPosition, ReadState};
use relaychat_schema::{Change, ChatMessage, ConversationId, MessageChange, MessageId, UserId};

use super::{DynamoStore, Guarded, Item, get_s, is_condition_failed, n, s, time};
use crate::aws::classify;

fn built<T>(op: &'static str, r: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, Error> {
    r.map_err(|e| Error::rejected(op, e))
}

/// Attempts at the optimistic unread recount before it is left to a retry.
const RECOUNT_ATTEMPTS: u32 = 8;
/// Attempts at storing a message while readers' cursors move past it.
const INSERT_ATTEMPTS: usize = 4;

impl DynamoStore {
    /// The message's row, guarded by its absence (a large group's carries its `seq`).
    pub(crate) fn message_put(&self, m: &ChatMessage, seq: Option<i64>) -> Result<TransactWriteItem, Error> {
        const OP: &str = "store message";
        let mut item: Item = [
            ("conversationId", s(m.conversation_id.as_str())),
            ("messageId", s(m.message_id.to_string())),
            ("senderId", s(m.sender_id.as_str())),
            ("senderName", s(m.sender_name.as_str())),
            ("content", s(m.content.as_str())),
            ("sentAt", time(m.sent_at)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(client_id) = &m.client_message_id {
            item.insert("clientMessageId".into(), s(client_id.as_str()));
        }
        if let Some(seq) = seq {
            item.insert("seq".into(), n(seq));
        }
        let put = built(
            OP,
            Put::builder()
                .table_name(self.tables.messages())
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(messageId)")
                .build(),
        )?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// One unread more for a recipient whose cursor is before the message (and a new version,
    /// so a recount running at the same time starts over).
    fn unread_increment(&self, m: &ChatMessage, recipient: &UserId) -> Result<TransactWriteItem, Error> {
        let update = built(
            "store message",
            Update::builder()
                .table_name(self.tables.memberships())
                .key("userId", s(recipient.as_str()))
                .key("conversationId", s(m.conversation_id.as_str()))
                .update_expression("ADD unread :one, unreadVersion :one")
                .condition_expression("attribute_not_exists(lastReadMessageId) OR lastReadMessageId < :id")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":id", s(m.message_id.to_string()))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// READ, for a recipient whose cursor had already passed the message when it was stored.
    fn read_receipt(&self, m: &ChatMessage, reader: &UserId) -> Result<TransactWriteItem, Error> {
        let put = built(
            "store message",
            Put::builder()
                .table_name(self.tables.receipts())
                .set_item(Some(super::receipts::read_item(
                    m.message_id,
                    &m.conversation_id,
                    reader,
                    m.sent_at,
                )))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The conversation's `lastMessage` map for this message.
    pub(crate) fn last_message_value(&self, m: &ChatMessage) -> AttributeValue {
        AttributeValue::M(
            [
                ("messageId", s(m.message_id.to_string())),
                ("senderId", s(m.sender_id.as_str())),
                ("senderName", s(m.sender_name.as_str())),
                ("content", s(m.content.preview(200))),
                ("sentAt", time(m.sent_at)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        )
    }

    /// The conversation's last message moved to this one, unless a later one is there already.
    fn last_message_update(&self, m: &ChatMessage) -> Result<Update, Error> {
        let last = self.last_message_value(m);
        built(
            "set last message",
            Update::builder()
                .table_name(self.tables.conversations())
                .key("conversationId", s(m.conversation_id.as_str()))
                .update_expression("SET lastMessageId = :id, lastMessage = :m")
                .condition_expression("attribute_not_exists(lastMessageId) OR lastMessageId < :id")
                .expression_attribute_values(":id", s(m.message_id.to_string()))
                .expression_attribute_values(":m", last)
                .build(),
        )
    }
}

impl MessageStore for DynamoStore {
    /// One transaction: the message, the unread increments or READ receipts, and the last
    /// message. A cancellation says which conditions failed: a reader's cursor already past the
    /// message (retried with a READ receipt instead), a later last message (retried without
    /// moving it), or the message itself already there (a repeat).
    async fn insert_message(&self, m: &ChatMessage) -> Result<Inserted, Error> {
        const OP: &str = "store message";
        if m.large_group {
            return self.insert_large(m).await;
        }
        let recipients: Vec<&UserId> = m.recipients.iter().filter(|r| **r != m.sender_id).collect();
        // Recipients found (by a cancelled try) to have read past this message already.
        let mut past: Vec<UserId> = Vec::new();
        // False once a cancelled try showed a later message is the last one.
        let mut move_last = true;
        for _ in 0..INSERT_ATTEMPTS {
            let mut writes = vec![self.message_put(m, None)?];
            let counted: Vec<&UserId> = recipients.iter().copied().filter(|r| !past.contains(r)).collect();
            for r in &counted {
                writes.push(self.unread_increment(m, r)?);
            }
            for r in &past {
                writes.push(self.read_receipt(m, r)?);
            }
            let last_at = move_last.then_some(writes.len());
            if move_last {
                writes.push(
                    TransactWriteItem::builder()
                        .update(self.last_message_update(m)?)
                        .build(),
                );
            }
            let cancelled = match self.transact_guarded(writes, OP).await? {
                Guarded::Committed => return Ok(Inserted::Stored { already_read_by: past }),
                Guarded::GuardFailed => return Ok(Inserted::Repeat),
                Guarded::Cancelled(c) => c,
            };
            // Only the last-message update and unread increments (items 1..) whose condition
            // failed may be retried without them.
            let mut failed = cancelled.failed_conditions();
            let later_is_last = last_at.is_some_and(|at| failed.contains(&at));
            if later_is_last {
                move_last = false;
                failed.retain(|i| Some(*i) != last_at);
            }
            let newly_past: Vec<UserId> = failed
                .iter()
                .filter_map(|i| i.checked_sub(1).and_then(|k| counted.get(k)))
                .map(|r| (*r).clone())
                .collect();
            if newly_past.len() != failed.len() || (newly_past.is_empty() && !later_is_last) {
                return Err(Error::rejected(OP, cancelled.error));
            }
            past.extend(newly_past);
        }
        Err(Error::unavailable(
            OP,
            "readers' cursors kept moving while the message was stored",
        ))
    }

    async fn set_last_message(&self, m: &ChatMessage) -> Result<(), Error> {
        let update = self.last_message_update(m)?;
        let result = self
            .client
            .update_item()
            .table_name(update.table_name())
            .set_key(Some(update.key().clone()))
            .update_expression(update.update_expression())
            .set_condition_expression(update.condition_expression().map(str::to_owned))
            .set_expression_attribute_values(update.expression_attribute_values().cloned())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // A later message is already the last one.
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(classify("set last message", e)),
        }
    }

    /// One conditional update of the message (its old image says why a condition failed), then,
    /// when it stands, the same change to the conversation's last message if it is this one.
    async fn apply_change(&self, c: &MessageChange) -> Result<ChangeOutcome, Error> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
        const OP: &str = "change message";
        let at = time(c.changed_at);
        let update = self
            .client
            .update_item()
            .table_name(self.tables.messages())
            .key("conversationId", s(c.conversation_id.as_str()))
            .key("messageId", s(c.message_id.to_string()))
            .expression_attribute_values(":at", at.clone())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let update = match &c.change {
            // The later edit stands; a replay (the same time) is applied again, harmlessly.
            Change::Edited { content } => update
                .update_expression("SET content = :text, editedAt = :at")
                .condition_expression(
                    "attribute_exists(messageId) AND attribute_not_exists(deletedAt) \
                     AND (attribute_not_exists(editedAt) OR editedAt <= :at)",
                )
                .expression_attribute_values(":text", s(content.as_str())),
            // The text goes for good; the first deletion's time stays.
            Change::Deleted => update
                .update_expression("SET deletedAt = :at REMOVE content")
                .condition_expression("attribute_exists(messageId) AND attribute_not_exists(deletedAt)"),
        };
        let (outcome, deleted_at) = match update.send().await {
            Ok(_) => (ChangeOutcome::Applied, Some(at)),
            Err(e) if is_condition_failed(&e) => {
                let old = match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(f)) => f.item().cloned(),
                    _ => None,
                };
                match old {
                    None => return Ok(ChangeOutcome::Missing),
                    // Deleted before: make sure its last-message copy is a tombstone too (a
                    // replay after a crash between the two writes).
                    Some(old) => (ChangeOutcome::Superseded, old.get("deletedAt").cloned()),
                }
            }
            Err(e) => return Err(classify(OP, e)),
        };
        let preview = match (&c.change, outcome) {
            (Change::Edited { content }, ChangeOutcome::Applied) => Some(
                self.client
                    .update_item()
                    .update_expression("SET lastMessage.content = :text, lastMessage.editedAt = :at")
                    .condition_expression(
                        "lastMessageId = :id AND attribute_not_exists(lastMessage.deletedAt) \
                         AND (attribute_not_exists(lastMessage.editedAt) OR lastMessage.editedAt <= :at)",
                    )
                    .expression_attribute_values(":text", s(content.preview(200)))
                    .expression_attribute_values(":at", time(c.changed_at)),
            ),
            (Change::Deleted, _) => deleted_at.map(|at| {
                self.client
                    .update_item()
                    .update_expression("SET lastMessage.content = :text, lastMessage.deletedAt = :at")
                    .condition_expression("lastMessageId = :id AND attribute_not_exists(lastMessage.deletedAt)")
                    .expression_attribute_values(":text", s(""))
                    .expression_attribute_values(":at", at)
            }),
            _ => None,
        };
        if let Some(preview) = preview {
            let result = preview
                .table_name(self.tables.conversations())
                .key("conversationId", s(c.conversation_id.as_str()))
                .expression_attribute_values(":id", s(c.message_id.to_string()))
                .send()
                .await;
            match result {
                // Another message is the last one (or the copy has this change already).
                Ok(_) => {}
                Err(e) if is_condition_failed(&e) => {}
                Err(e) => return Err(classify("change last message", e)),
            }
        }
        Ok(outcome)
    }

    async fn messages_between(
        &self,
        conversation: &ConversationId,
        after: Option<MessageId>,
        up_to: MessageId,
        limit: usize,
    ) -> Result<Vec<(MessageId, UserId)>, Error> {
        let query = |start: Option<Item>, room: i32| {
            let query = self
                .client
                .query()
                .table_name(self.tables.messages())
                .expression_attribute_values(":c", s(conversation.as_str()))
                .expression_attribute_values(":hi", s(up_to.to_string()))
                .projection_expression("messageId, senderId")
                .limit(room)
                .set_exclusive_start_key(start);
            match after {
                // BETWEEN is inclusive; the cursor message itself is dropped below.
                Some(after) => query
                    .key_condition_expression("conversationId = :c AND messageId BETWEEN :lo AND :hi")
                    .expression_attribute_values(":lo", s(after.to_string())),
                None => query.key_condition_expression("conversationId = :c AND messageId <= :hi"),
            }
        };
        super::query_up_to(limit, "read messages", query, |item| {
            super::readable("message", item, |item| {
                let id = get_s(item, "messageId")?.parse::<MessageId>().ok()?;
                let sender = UserId::parse(get_s(item, "senderId")?).ok()?;
                Some((id, sender))
            })
            .filter(|(id, _)| after.is_none_or(|a| *id > a))
        })
        .await
    }
}

impl ReadState for DynamoStore {
    async fn advance_read_position(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        to: MessageId,
    ) -> Result<Option<relaychat_core::ports::ReadPlace>, Error> {
        self.advance_large(user, conversation, to).await
    }

    async fn read_position(&self, user: &UserId, conversation: &ConversationId) -> Result<ReadPosition, Error> {
        let item = self
            .membership(user, conversation, "lastReadMessageId, readProgress", "read cursor")
            .await?;
        let id = |name: &str| {
            item.as_ref()
                .and_then(|i| get_s(i, name))
                .and_then(|id| id.parse().ok())
        };
        Ok(ReadPosition {
            cursor: id("lastReadMessageId"),
            progress: id("readProgress"),
        })
    }

    async fn save_read_progress(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        to: MessageId,
    ) -> Result<(), Error> {
        let moved = self
            .update_membership(user, conversation)
            .update_expression("SET readProgress = :to")
            .condition_expression("attribute_not_exists(readProgress) OR readProgress < :to")
            .expression_attribute_values(":to", s(to.to_string()));
        super::update_unless_done(moved, "save read progress").await
    }

    async fn advance_read_cursor(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        to: MessageId,
    ) -> Result<(), Error> {
        // Optimistic: count, then set cursor and count only if no message was stored meanwhile
        // (each stored message bumps unreadVersion); else count again.
        for attempt in 0..RECOUNT_ATTEMPTS {
            let membership = self
                .membership(user, conversation, "lastReadMessageId, unreadVersion", "read cursor")
                .await?;
            let item = membership.as_ref();
            if item
                .and_then(|i| get_s(i, "lastReadMessageId"))
                .and_then(|c| c.parse::<MessageId>().ok())
                .is_some_and(|c| c >= to)
            {
                return Ok(());
            }
            let version = item.and_then(|i| super::get_n(i, "unreadVersion"));
            let unread = self.count_unread(user, conversation, to).await?;
            let mut update = self
                .client
                .update_item()
                .table_name(self.tables.memberships())
                .key("userId", s(user.as_str()))
                .key("conversationId", s(conversation.as_str()))
                .update_expression("SET lastReadMessageId = :to, unread = :n")
                .expression_attribute_values(":to", s(to.to_string()))
                .expression_attribute_values(":n", n(unread));
            update = match version {
                Some(v) => update
                    .condition_expression(
                        "unreadVersion = :v AND (attribute_not_exists(lastReadMessageId) OR lastReadMessageId < :to)",
                    )
                    .expression_attribute_values(":v", n(v)),
                None => update.condition_expression(
                    "attribute_not_exists(unreadVersion) AND (attribute_not_exists(lastReadMessageId) OR lastReadMessageId < :to)",
                ),
            };
            match update.send().await {
                Ok(_) => return Ok(()),
                Err(e) if is_condition_failed(&e) => {
                    // A message was stored meanwhile: back off a little (messages come in bursts).
                    tokio::time::sleep(std::time::Duration::from_millis(5 << attempt.min(5))).await;
                }
                Err(e) => return Err(classify("advance read cursor", e)),
            }
        }
        Err(Error::unavailable(
            "advance read cursor",
            "messages kept arriving during the unread recount",
        ))
    }
}

impl DynamoStore {
    /// Messages from others after `to`: a keyed count, all pages.
    async fn count_unread(&self, user: &UserId, conversation: &ConversationId, to: MessageId) -> Result<i64, Error> {
        let pages: Vec<_> = self
            .client
            .query()
            .table_name(self.tables.messages())
            .key_condition_expression("conversationId = :c AND messageId > :to")
            .filter_expression("senderId <> :me")
            .expression_attribute_values(":c", s(conversation.as_str()))
            .expression_attribute_values(":to", s(to.to_string()))
            .expression_attribute_values(":me", s(user.as_str()))
            .select(Select::Count)
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| classify("count unread", e))?;
        Ok(pages.iter().map(|p| i64::from(p.count())).sum())
    }
}
