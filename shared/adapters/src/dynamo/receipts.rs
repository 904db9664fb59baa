//! Per-recipient receipts: forward-only by a conditional write on the status rank.

use chrono::{DateTime, Utc};
use relaychat_core::Error;
use relaychat_core::ports::Receipts;
use relaychat_schema::{ConversationId, DeliveryStatus, MessageId, UserId};

use super::{DynamoStore, is_condition_failed, n, s, time};
use crate::aws::classify;

impl Receipts for DynamoStore {
    async fn advance_receipt(
        &self,
        message: MessageId,
        conversation: &ConversationId,
        recipient: &UserId,
        status: DeliveryStatus,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let result = self
            .client
            .update_item()
            .table_name(self.tables.receipts())
            .key("messageId", s(message.to_string()))
            .key("userId", s(recipient.as_str()))
            .update_expression("SET #status = :status, statusRank = :rank, conversationId = :c, updatedAt = :at")
            .condition_expression("attribute_not_exists(statusRank) OR statusRank < :rank")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":rank", n(status.rank()))
            .expression_attribute_values(":c", s(conversation.as_str()))
            .expression_attribute_values(":at", time(at))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(classify("advance receipt", e)),
        }
    }
}
