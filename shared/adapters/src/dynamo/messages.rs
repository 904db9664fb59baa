//! Messages, last message per conversation, unread counts and read cursors.

use aws_sdk_dynamodb::types::{AttributeValue, Put, Select, TransactWriteItem, Update};
use relaychat_core::Error;
use relaychat_core::ports::{MessageStore, ReadState};
use relaychat_schema::{ChatMessage, ConversationId, MessageId, UserId};

use super::{DynamoStore, Item, get_s, is_condition_failed, n, query_items, s, time};
use crate::aws::classify;

fn built<T>(op: &'static str, r: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, Error> {
    r.map_err(|e| Error::rejected(op, e))
}

impl MessageStore for DynamoStore {
    async fn insert_message(&self, m: &ChatMessage) -> Result<bool, Error> {
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
        let put = built(
            OP,
            Put::builder()
                .table_name(self.tables.messages())
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(messageId)")
                .build(),
        )?;
        let mut writes = vec![TransactWriteItem::builder().put(put).build()];
        for recipient in m.recipients.iter().filter(|r| **r != m.sender_id) {
            let update = built(
                OP,
                Update::builder()
                    .table_name(self.tables.memberships())
                    .key("userId", s(recipient.as_str()))
                    .key("conversationId", s(m.conversation_id.as_str()))
                    .update_expression("ADD unread :one")
                    .expression_attribute_values(":one", n(1))
                    .build(),
            )?;
            writes.push(TransactWriteItem::builder().update(update).build());
        }
        self.guarded_transaction(writes, OP).await
    }

    async fn set_last_message(&self, m: &ChatMessage) -> Result<(), Error> {
        let last = AttributeValue::M(
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
        );
        let result = self
            .client
            .update_item()
            .table_name(self.tables.conversations())
            .key("conversationId", s(m.conversation_id.as_str()))
            .update_expression("SET lastMessageId = :id, lastMessage = :m")
            .condition_expression("attribute_not_exists(lastMessageId) OR lastMessageId < :id")
            .expression_attribute_values(":id", s(m.message_id.to_string()))
            .expression_attribute_values(":m", last)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // A later message is already the last one.
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(classify("set last message", e)),
        }
    }

    async fn messages_between(
        &self,
        conversation: &ConversationId,
        after: Option<MessageId>,
        up_to: MessageId,
    ) -> Result<Vec<(MessageId, UserId)>, Error> {
        let mut query = self
            .client
            .query()
            .table_name(self.tables.messages())
            .expression_attribute_values(":c", s(conversation.as_str()))
            .expression_attribute_values(":hi", s(up_to.to_string()))
            .projection_expression("messageId, senderId");
        query = match after {
            // BETWEEN is inclusive; the cursor message itself is dropped below.
            Some(after) => query
                .key_condition_expression("conversationId = :c AND messageId BETWEEN :lo AND :hi")
                .expression_attribute_values(":lo", s(after.to_string())),
            None => query.key_condition_expression("conversationId = :c AND messageId <= :hi"),
        };
        let items: Vec<Item> = query_items(query, "read messages").await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let id = get_s(item, "messageId")?.parse::<MessageId>().ok()?;
                let sender = UserId::parse(get_s(item, "senderId")?).ok()?;
                Some((id, sender))
            })
            .filter(|(id, _)| after.is_none_or(|a| *id > a))
            .collect())
    }
}

impl ReadState for DynamoStore {
    async fn read_cursor(&self, user: &UserId, conversation: &ConversationId) -> Result<Option<MessageId>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(self.tables.memberships())
            .key("userId", s(user.as_str()))
            .key("conversationId", s(conversation.as_str()))
            .projection_expression("lastReadMessageId")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("read cursor", e))?;
        Ok(out
            .item()
            .and_then(|i| get_s(i, "lastReadMessageId"))
            .and_then(|id| id.parse().ok()))
    }

    async fn advance_read_cursor(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        to: MessageId,
    ) -> Result<(), Error> {
        let moved = self
            .client
            .update_item()
            .table_name(self.tables.memberships())
            .key("userId", s(user.as_str()))
            .key("conversationId", s(conversation.as_str()))
            .update_expression("SET lastReadMessageId = :to")
            .condition_expression("attribute_not_exists(lastReadMessageId) OR lastReadMessageId < :to")
            .expression_attribute_values(":to", s(to.to_string()))
            .send()
            .await;
        match moved {
            Ok(_) => {}
            Err(e) if is_condition_failed(&e) => return Ok(()),
            Err(e) => return Err(classify("advance read cursor", e)),
        }
        // Unread = later messages from others: a keyed count, then one write.
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
        let unread: i32 = pages.iter().map(|p| p.count()).sum();
        self.client
            .update_item()
            .table_name(self.tables.memberships())
            .key("userId", s(user.as_str()))
            .key("conversationId", s(conversation.as_str()))
            .update_expression("SET unread = :n")
            .expression_attribute_values(":n", n(unread))
            .send()
            .await
            .map_err(|e| classify("set unread", e))?;
        Ok(())
    }
}
