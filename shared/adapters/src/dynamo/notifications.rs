//! Notification history (30-day TTL) and push device tokens.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use chrono::Utc;
use relaychat_core::Error;
use relaychat_core::ports::{Begun, Device, DeviceStore, NotificationLog};
use relaychat_schema::{DeviceToken, Notification, UserId};

use super::{DynamoStore, Item, get_s, is_condition_failed, n, query_items, s, time, ttl_after};
use crate::aws::classify;

/// How long notification history is kept.
pub const NOTIFICATION_TTL_SECONDS: i64 = 30 * 24 * 60 * 60;

impl NotificationLog for DynamoStore {
    async fn begin(&self, note: &Notification) -> Result<Begun, Error> {
        let now = Utc::now();
        let mut request = self
            .client
            .put_item()
            .table_name(self.tables.notifications())
            .item("userId", s(note.user_id.as_str()))
            .item("notificationId", s(&note.notification_id))
            .item("title", s(&note.title))
            .item("body", s(&note.body))
            .item("state", s("PENDING"))
            .item("createdAt", time(note.created_at))
            .item("expiresAt", ttl_after(now, NOTIFICATION_TTL_SECONDS))
            // New only: an existing row (PENDING or SENT) keeps what it knows.
            .condition_expression("attribute_not_exists(notificationId)");
        if let Some(c) = &note.conversation_id {
            request = request.item("conversationId", s(c.as_str()));
        }
        if let Some(m) = &note.message_id {
            request = request.item("messageId", s(m.to_string()));
        }
        match request.send().await {
            Ok(_) => {
                return Ok(Begun::Send {
                    already_sent_to: Vec::new(),
                });
            }
            Err(e) if is_condition_failed(&e) => {}
            Err(e) => return Err(classify("record notification", e)),
        }
        // There already: SENT (done), or PENDING from an attempt that reached some devices.
        let row = self
            .notification(&note.user_id, &note.notification_id)
            .await?
            .unwrap_or_default();
        if get_s(&row, "state") != Some("PENDING") {
            return Ok(Begun::AlreadySent);
        }
        let already_sent_to = row
            .get("sentTo")
            .and_then(|v| v.as_ss().ok())
            .cloned()
            .unwrap_or_default();
        Ok(Begun::Send { already_sent_to })
    }

    async fn sent_to(&self, note: &Notification, device: &Device) -> Result<(), Error> {
        self.client
            .update_item()
            .table_name(self.tables.notifications())
            .key("userId", s(note.user_id.as_str()))
            .key("notificationId", s(&note.notification_id))
            .update_expression("ADD sentTo :t")
            .expression_attribute_values(":t", AttributeValue::Ss(vec![device.token.to_string()]))
            .send()
            .await
            .map_err(|e| classify("remember device sent", e))?;
        Ok(())
    }

    async fn mark_sent(&self, note: &Notification, devices: usize) -> Result<(), Error> {
        self.client
            .update_item()
            .table_name(self.tables.notifications())
            .key("userId", s(note.user_id.as_str()))
            .key("notificationId", s(&note.notification_id))
            .update_expression("SET #state = :sent, devices = :d, sentAt = :at")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":sent", s("SENT"))
            .expression_attribute_values(":d", n(devices))
            .expression_attribute_values(":at", time(Utc::now()))
            .send()
            .await
            .map_err(|e| classify("mark notification sent", e))?;
        Ok(())
    }
}

/// The item that says which user a token belongs to, beside the devices (a user id has no `#`).
fn owner_key(token: &DeviceToken) -> String {
    format!("token#{token}")
}
const OWNER: &str = "owner";
/// Attempts at binding a token while others register it at the same time.
const BIND_ATTEMPTS: usize = 4;

impl DynamoStore {
    async fn token_owner(&self, token: &DeviceToken) -> Result<Option<UserId>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(self.tables.devices())
            .key("userId", s(owner_key(token)))
            .key("token", s(OWNER))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("read token owner", e))?;
        Ok(out
            .item()
            .and_then(|i| get_s(i, "owner"))
            .and_then(|o| UserId::parse(o).ok()))
    }
}

impl DeviceStore for DynamoStore {
    async fn register_device(&self, device: &Device) -> Result<(), Error> {
        const OP: &str = "register device";
        let built =
            |r: Result<TransactWriteItem, aws_sdk_dynamodb::error::BuildError>| r.map_err(|e| Error::rejected(OP, e));
        for _ in 0..BIND_ATTEMPTS {
            let previous = self.token_owner(&device.token).await?;
            let row = Put::builder()
                .table_name(self.tables.devices())
                .item("userId", s(device.user.as_str()))
                .item("token", s(device.token.as_str()))
                .item("platform", s(&device.platform))
                .item("registeredAt", time(Utc::now()))
                .build()
                .map(|p| TransactWriteItem::builder().put(p).build());
            let mut owner = Put::builder()
                .table_name(self.tables.devices())
                .item("userId", s(owner_key(&device.token)))
                .item("token", s(OWNER))
                .item("owner", s(device.user.as_str()));
            owner = match &previous {
                Some(p) => owner
                    .condition_expression("#o = :previous")
                    .expression_attribute_names("#o", "owner")
                    .expression_attribute_values(":previous", s(p.as_str())),
                None => owner.condition_expression("attribute_not_exists(userId)"),
            };
            let mut writes = vec![
                built(owner.build().map(|p| TransactWriteItem::builder().put(p).build()))?,
                built(row)?,
            ];
            // Taken from its previous user: their previews stop going to this device.
            if let Some(p) = previous.filter(|p| *p != device.user) {
                let delete = Delete::builder()
                    .table_name(self.tables.devices())
                    .key("userId", s(p.as_str()))
                    .key("token", s(device.token.as_str()))
                    .build()
                    .map(|d| TransactWriteItem::builder().delete(d).build());
                writes.push(built(delete)?);
            }
            // Guard failed: someone else bound the token meanwhile; read the owner again.
            if self.guarded_transaction(writes, OP).await? {
                return Ok(());
            }
        }
        Err(Error::unavailable(
            OP,
            "the token was being registered by others at the same time",
        ))
    }

    async fn devices_of(&self, user: &UserId) -> Result<Vec<Device>, Error> {
        let items: Vec<Item> = query_items(
            self.client
                .query()
                .table_name(self.tables.devices())
                .key_condition_expression("userId = :u")
                .expression_attribute_values(":u", s(user.as_str())),
            "find devices",
        )
        .await?;
        Ok(items
            .iter()
            .filter_map(|i| {
                super::readable("device", i, |i| {
                    Some(Device {
                        user: user.clone(),
                        token: DeviceToken::parse(get_s(i, "token")?).ok()?,
                        platform: get_s(i, "platform").unwrap_or("fcm").to_owned(),
                    })
                })
            })
            .collect())
    }

    async fn remove_device(&self, device: &Device) -> Result<(), Error> {
        self.client
            .delete_item()
            .table_name(self.tables.devices())
            .key("userId", s(device.user.as_str()))
            .key("token", s(device.token.as_str()))
            .send()
            .await
            .map_err(|e| classify("remove device", e))?;
        // The binding goes too, if the token is still this user's.
        let unbound = self
            .client
            .delete_item()
            .table_name(self.tables.devices())
            .key("userId", s(owner_key(&device.token)))
            .key("token", s(OWNER))
            .condition_expression("#o = :me")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":me", s(device.user.as_str()))
            .send()
            .await;
        match unbound {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(classify("unbind device token", e)),
        }
    }
}

impl DynamoStore {
    /// A notification's history row, as stored (for tests and support tools).
    pub async fn notification(&self, user: &UserId, notification_id: &str) -> Result<Option<Item>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(self.tables.notifications())
            .key("userId", s(user.as_str()))
            .key("notificationId", s(notification_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("read notification", e))?;
        Ok(out.item().cloned())
    }
}
