//! Conversations, memberships (with unread counts) and history.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, ReturnValue, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use relaychat_core::Error;
use relaychat_core::ports::{Conversation, ConversationStore, MAX_RECEIPT_LOOKUPS, SendClaim, status_reached_by_all};
use relaychat_schema::protocol::{ConversationSummary, MessageView};
use relaychat_schema::{ClientMessageId, ConversationId, DeliveryStatus, MessageId, Title, UserId};

use super::{DynamoStore, Item, get_n, get_s, n, query_items, s, time, ttl_after};
use crate::aws::classify;

/// How long a createConversation idempotency key is remembered.
const REQUEST_KEY_TTL_SECONDS: i64 = 24 * 60 * 60;

/// A creator's idempotency key, stored beside the conversations (never a valid conversation id:
/// those hold no `#`).
fn request_key(creator: &UserId, request: &ClientMessageId) -> String {
    format!("request#{creator}#{request}")
}

fn parse_time(v: Option<&str>) -> DateTime<Utc> {
    v.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// A stored message (or a conversation's `lastMessage` map) as the protocol shows it.
fn message_view(conversation: &ConversationId, item: &Item) -> Option<MessageView> {
    Some(MessageView {
        message_id: get_s(item, "messageId")?.parse().ok()?,
        conversation_id: conversation.clone(),
        sender_id: UserId::parse(get_s(item, "senderId")?).ok()?,
        sender_name: get_s(item, "senderName").unwrap_or_default().to_owned(),
        content: get_s(item, "content").unwrap_or_default().to_owned(),
        sent_at: parse_time(get_s(item, "sentAt")),
        edited_at: get_s(item, "editedAt").map(|t| parse_time(Some(t))),
        deleted_at: get_s(item, "deletedAt").map(|t| parse_time(Some(t))),
        status: None,
        read_by: None,
    })
}

/// A small conversation's `members` attribute.
pub(crate) fn member_list(users: &[UserId]) -> AttributeValue {
    AttributeValue::L(users.iter().map(|m| s(m.as_str())).collect())
}

fn members_of(item: &Item) -> Vec<UserId> {
    item.get("members")
        .and_then(|v| v.as_l().ok())
        .map(|l| {
            l.iter()
                .filter_map(|m| m.as_s().ok())
                .filter_map(|m| UserId::parse(m.as_str()).ok())
                .collect()
        })
        .unwrap_or_default()
}

fn conversation_from(item: &Item) -> Option<Conversation> {
    Some(Conversation {
        id: ConversationId::parse(get_s(item, "conversationId")?).ok()?,
        title: get_s(item, "title").and_then(|t| Title::parse(t).ok()),
        members: members_of(item),
        created_by: UserId::parse(get_s(item, "createdBy")?).ok()?,
        created_at: parse_time(get_s(item, "createdAt")),
        large: item
            .get("largeGroup")
            .and_then(|v| v.as_bool().ok())
            .filter(|large| **large)
            .map(|_| usize::try_from(get_n(item, "memberCount").unwrap_or(0)).unwrap_or(0)),
    })
}

impl DynamoStore {
    /// The conversation a marker row (a request key, a pair) names, if the row is there.
    async fn marked_conversation(&self, marker: &str) -> Result<Option<ConversationId>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(self.tables.conversations())
            .key("conversationId", s(marker))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("read a conversation marker", e))?;
        Ok(out
            .item()
            .and_then(|i| get_s(i, "createdConversationId"))
            .and_then(|id| ConversationId::parse(id).ok()))
    }
}

impl ConversationStore for DynamoStore {
    async fn create_conversation(
        &self,
        c: &Conversation,
        request: Option<&ClientMessageId>,
    ) -> Result<Conversation, Error> {
        const OP: &str = "create conversation";
        let mut item: Item = [
            ("conversationId", s(c.id.as_str())),
            ("members", member_list(&c.members)),
            ("createdBy", s(c.created_by.as_str())),
            ("createdAt", time(c.created_at)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(t) = &c.title {
            item.insert("title".into(), s(t.as_str()));
        }
        let put = |table: String, item: Item, condition: &str| {
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression(condition)
                .build()
                .map(|p| TransactWriteItem::builder().put(p).build())
                .map_err(|e| Error::rejected(OP, e))
        };
        let mut writes = Vec::with_capacity(c.members.len() + 2);
        // Marker rows naming the conversation: the request key is the guard (a retried request
        // finds it and creates nothing); the pair's makes a direct conversation one per pair.
        let request_marker = request.map(|r| {
            let expires = ttl_after(c.created_at, REQUEST_KEY_TTL_SECONDS);
            (request_key(&c.created_by, r), Some(expires))
        });
        for (key, expires) in request_marker.into_iter().chain(c.direct_pair().map(|p| (p, None))) {
            let mut marker: Item = [("conversationId", s(key)), ("createdConversationId", s(c.id.as_str()))]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            if let Some(expires) = expires {
                marker.insert("expiresAt".into(), expires);
            }
            writes.push(put(
                self.tables.conversations(),
                marker,
                "attribute_not_exists(conversationId)",
            )?);
        }
        writes.push(put(
            self.tables.conversations(),
            item,
            "attribute_not_exists(conversationId)",
        )?);
        for member in &c.members {
            let membership: Item = [
                ("userId", s(member.as_str())),
                ("conversationId", s(c.id.as_str())),
                ("unread", n(0)),
                ("joinedAt", time(c.created_at)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            writes.push(put(
                self.tables.memberships(),
                membership,
                "attribute_not_exists(userId)",
            )?);
        }
        if self.guarded_transaction(writes, OP).await? {
            return Ok(c.clone());
        }
        // A repeated request answers with what its first try created; a second direct
        // conversation of a pair with the pair's first.
        let markers = request
            .map(|r| request_key(&c.created_by, r))
            .into_iter()
            .chain(c.direct_pair());
        for marker in markers {
            if let Some(earlier) = self.marked_conversation(&marker).await? {
                return self
                    .conversation(&earlier)
                    .await?
                    .ok_or_else(|| Error::rejected(OP, format!("{marker} names {earlier}, which is gone")));
            }
        }
        match request {
            Some(_) => Err(Error::unavailable(
                OP,
                "the request key expired while being read; try again",
            )),
            None => Err(Error::rejected(OP, format!("conversation {} exists already", c.id))),
        }
    }

    async fn conversation(&self, id: &ConversationId) -> Result<Option<Conversation>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(self.tables.conversations())
            .key("conversationId", s(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("read conversation", e))?;
        Ok(out
            .item()
            .and_then(|i| super::readable("conversation", i, conversation_from)))
    }

    async fn set_members(&self, current: &Conversation, members: &[UserId]) -> Result<Option<Conversation>, Error> {
        const OP: &str = "change members";
        // The guard: the members are still those `current` read (else someone changed them).
        let update = Update::builder()
            .table_name(self.tables.conversations())
            .key("conversationId", s(current.id.as_str()))
            .update_expression("SET #members = :new")
            .condition_expression("#members = :old")
            .expression_attribute_names("#members", "members")
            .expression_attribute_values(":new", member_list(members))
            .expression_attribute_values(":old", member_list(&current.members))
            .build()
            .map_err(|e| Error::rejected(OP, e))?;
        let mut writes = vec![TransactWriteItem::builder().update(update).build()];
        let now = Utc::now();
        for joined in members.iter().filter(|m| !current.members.contains(m)) {
            let put = Put::builder()
                .table_name(self.tables.memberships())
                .item("userId", s(joined.as_str()))
                .item("conversationId", s(current.id.as_str()))
                .item("unread", n(0))
                .item("joinedAt", time(now))
                .build()
                .map_err(|e| Error::rejected(OP, e))?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        for left in current.members.iter().filter(|m| !members.contains(m)) {
            let delete = Delete::builder()
                .table_name(self.tables.memberships())
                .key("userId", s(left.as_str()))
                .key("conversationId", s(current.id.as_str()))
                .build()
                .map_err(|e| Error::rejected(OP, e))?;
            writes.push(TransactWriteItem::builder().delete(delete).build());
        }
        if !self.guarded_transaction(writes, OP).await? {
            return Ok(None);
        }
        Ok(Some(Conversation {
            members: members.to_vec(),
            ..current.clone()
        }))
    }

    async fn add_to_large(&self, current: &Conversation, added: &[UserId]) -> Result<Option<Conversation>, Error> {
        self.add_large(current, added).await
    }
    async fn remove_from_large(&self, current: &Conversation, member: &UserId) -> Result<Option<Conversation>, Error> {
        self.remove_large(current, member).await
    }
    async fn is_member(&self, conversation: &ConversationId, user: &UserId) -> Result<bool, Error> {
        self.is_member_of(conversation, user).await
    }
    async fn read_by(
        &self,
        conversation: &ConversationId,
        sender: &UserId,
        messages: &[MessageId],
    ) -> Result<HashMap<MessageId, u64>, Error> {
        self.read_by_counts(conversation, sender, messages).await
    }
    async fn claim_send(&self, claim: &SendClaim) -> Result<Option<SendClaim>, Error> {
        const OP: &str = "claim an idempotency key";
        let key = format!("send#{}#{}", claim.sender, claim.key);
        let put = self
            .client
            .put_item()
            .table_name(self.tables.conversations())
            .item("conversationId", s(&key))
            .item("sentConversationId", s(claim.conversation_id.as_str()))
            .item("content", s(&claim.content))
            .item("messageId", s(claim.message_id.to_string()))
            .item("sentAt", time(claim.sent_at))
            .item("expiresAt", ttl_after(claim.sent_at, REQUEST_KEY_TTL_SECONDS))
            .condition_expression("attribute_not_exists(conversationId)")
            .send()
            .await;
        match put {
            Ok(_) => return Ok(None),
            Err(e) if super::is_condition_failed(&e) => {}
            Err(e) => return Err(classify(OP, e)),
        }
        let out = self
            .client
            .get_item()
            .table_name(self.tables.conversations())
            .key("conversationId", s(&key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        let earlier = out.item().and_then(|i| {
            super::readable("idempotency key", i, |i| {
                Some(SendClaim {
                    sender: claim.sender.clone(),
                    key: claim.key.clone(),
                    conversation_id: ConversationId::parse(get_s(i, "sentConversationId")?).ok()?,
                    content: get_s(i, "content")?.to_owned(),
                    message_id: get_s(i, "messageId")?.parse().ok()?,
                    sent_at: DateTime::parse_from_rfc3339(get_s(i, "sentAt")?)
                        .ok()?
                        .with_timezone(&Utc),
                })
            })
        });
        // Gone between the two calls (expired): the key is free again, but not claimed by this try.
        earlier
            .map(Some)
            .ok_or_else(|| Error::unavailable(OP, "the key expired while being read; try again"))
    }

    async fn receipt_statuses(
        &self,
        messages: &[MessageId],
        recipients: &[UserId],
    ) -> Result<HashMap<MessageId, DeliveryStatus>, Error> {
        let keys: Vec<Item> = messages
            .iter()
            .flat_map(|m| {
                recipients.iter().map(move |r| {
                    [("messageId", s(m.to_string())), ("userId", s(r.as_str()))]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect()
                })
            })
            .take(MAX_RECEIPT_LOOKUPS)
            .collect();
        let table = self.tables.receipts();
        let mut reached: HashMap<(MessageId, String), DeliveryStatus> = HashMap::new();
        for item in self.batch_get_keys(&table, keys, "read receipts").await? {
            let (Some(m), Some(u)) = (get_s(&item, "messageId"), get_s(&item, "userId")) else {
                continue;
            };
            let status = match get_s(&item, "status") {
                Some("READ") => DeliveryStatus::Read,
                Some("DELIVERED") => DeliveryStatus::Delivered,
                _ => continue,
            };
            if let Ok(m) = m.parse() {
                reached.insert((m, u.to_owned()), status);
            }
        }
        Ok(status_reached_by_all(messages, recipients, |m, r| {
            reached.get(&(m, r.to_string())).copied()
        }))
    }

    async fn set_title(&self, id: &ConversationId, title: Option<&Title>) -> Result<Option<Conversation>, Error> {
        let request = self
            .client
            .update_item()
            .table_name(self.tables.conversations())
            .key("conversationId", s(id.as_str()))
            .condition_expression("attribute_exists(conversationId) AND attribute_exists(createdBy)")
            .return_values(ReturnValue::AllNew);
        let request = match title {
            Some(t) => request
                .update_expression("SET title = :t")
                .expression_attribute_values(":t", s(t.as_str())),
            None => request.update_expression("REMOVE title"),
        };
        match request.send().await {
            Ok(out) => Ok(out
                .attributes()
                .and_then(|i| super::readable("conversation", i, conversation_from))),
            Err(e) if super::is_condition_failed(&e) => Ok(None),
            Err(e) => Err(classify("rename conversation", e)),
        }
    }

    async fn conversations_of(&self, user: &UserId) -> Result<Vec<ConversationSummary>, Error> {
        let memberships: Vec<Item> = query_items(
            self.client
                .query()
                .table_name(self.tables.memberships())
                .key_condition_expression("userId = :u")
                .expression_attribute_values(":u", s(user.as_str())),
            "list memberships",
        )
        .await?;
        // A small group's unread is counted on the membership; a large group's is the messages
        // stored since the member's read position (`seq` − `readSeq`).
        let unread: HashMap<String, (i64, i64)> = memberships
            .iter()
            .filter_map(|m| {
                Some((
                    get_s(m, "conversationId")?.to_owned(),
                    (get_n(m, "unread").unwrap_or(0), get_n(m, "readSeq").unwrap_or(0)),
                ))
            })
            .collect();
        let mut summaries = Vec::with_capacity(unread.len());
        let ids: Vec<&str> = unread.keys().map(String::as_str).collect();
        let table = self.tables.conversations();
        for item in self
            .batch_get(&table, "conversationId", &ids, "list conversations")
            .await?
        {
            let Some(c) = super::readable("conversation", &item, conversation_from) else {
                continue;
            };
            let last_message = item
                .get("lastMessage")
                .and_then(|v| v.as_m().ok())
                .and_then(|m| message_view(&c.id, m));
            let (counted, read_seq) = unread.get(c.id.as_str()).copied().unwrap_or((0, 0));
            summaries.push(ConversationSummary {
                unread: match c.large {
                    Some(_) => (get_n(&item, "seq").unwrap_or(0) - read_seq).max(0),
                    None => counted,
                },
                member_count: c.member_count(),
                conversation_id: c.id,
                title: c.title,
                members: c.members,
                last_message,
            });
        }
        Ok(summaries)
    }

    async fn history(
        &self,
        conversation: &ConversationId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<(Vec<MessageView>, Option<MessageId>), Error> {
        let mut query = self
            .client
            .query()
            .table_name(self.tables.messages())
            .scan_index_forward(false)
            .limit(limit as i32)
            .expression_attribute_values(":c", s(conversation.as_str()));
        query = match before {
            Some(b) => query
                .key_condition_expression("conversationId = :c AND messageId < :b")
                .expression_attribute_values(":b", s(b.to_string())),
            None => query.key_condition_expression("conversationId = :c"),
        };
        let out = query.send().await.map_err(|e| classify("read history", e))?;
        let messages: Vec<MessageView> = out
            .items()
            .iter()
            .filter_map(|i| super::readable("message", i, |i| message_view(conversation, i)))
            .collect();
        // DynamoDB says there may be more whenever it stopped at the limit.
        let next = out
            .last_evaluated_key()
            .and_then(|k| get_s(k, "messageId"))
            .and_then(|id| id.parse().ok());
        Ok((messages, next))
    }

    async fn message(&self, conversation: &ConversationId, id: MessageId) -> Result<Option<MessageView>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(self.tables.messages())
            .key("conversationId", s(conversation.as_str()))
            .key("messageId", s(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("read message", e))?;
        Ok(out
            .item()
            .and_then(|i| super::readable("message", i, |i| message_view(conversation, i))))
    }
}

impl relaychat_core::ports::MemberPages for DynamoStore {
    async fn members_page(
        &self,
        conversation: &ConversationId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserId>, Error> {
        self.members_after(conversation, after, limit).await
    }
}
