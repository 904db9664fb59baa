//! Notification history (30-day TTL) and push device tokens.

use chrono::Utc;
use relaychat_core::Error;
use relaychat_core::ports::{Device, DeviceStore, NotificationLog};
use relaychat_schema::{Notification, UserId};

use super::{DynamoStore, Item, get_s, is_condition_failed, n, query_items, s, time, ttl_after};
use crate::aws::classify;

/// How long notification history is kept.
pub const NOTIFICATION_TTL_SECONDS: i64 = 30 * 24 * 60 * 60;

impl NotificationLog for DynamoStore {
    async fn begin(&self, note: &Notification) -> Result<bool, Error> {
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
            // New, or left PENDING by an attempt that did not finish: (re)send. SENT: done.
            .condition_expression("attribute_not_exists(notificationId) OR #state = :pending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":pending", s("PENDING"));
        if let Some(c) = &note.conversation_id {
            request = request.item("conversationId", s(c.as_str()));
        }
        if let Some(m) = &note.message_id {
            request = request.item("messageId", s(m.to_string()));
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(classify("record notification", e)),
        }
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

impl DeviceStore for DynamoStore {
    async fn register_device(&self, device: &Device) -> Result<(), Error> {
        self.client
            .put_item()
            .table_name(self.tables.devices())
            .item("userId", s(device.user.as_str()))
            .item("token", s(&device.token))
            .item("platform", s(&device.platform))
            .item("registeredAt", time(Utc::now()))
            .send()
            .await
            .map_err(|e| classify("register device", e))?;
        Ok(())
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
                Some(Device {
                    user: user.clone(),
                    token: get_s(i, "token")?.to_owned(),
                    platform: get_s(i, "platform").unwrap_or("fcm").to_owned(),
                })
            })
            .collect())
    }

    async fn remove_device(&self, device: &Device) -> Result<(), Error> {
        self.client
            .delete_item()
            .table_name(self.tables.devices())
            .key("userId", s(device.user.as_str()))
            .key("token", s(&device.token))
            .send()
            .await
            .map_err(|e| classify("remove device", e))?;
        Ok(())
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
