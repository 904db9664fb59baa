//! Per-recipient receipts: forward-only by a conditional write on the status rank; READ (the
//! last status) in unconditional batches.

use std::time::Duration;

use aws_sdk_dynamodb::types::{PutRequest, ReturnValuesOnConditionCheckFailure, WriteRequest};
use chrono::{DateTime, Utc};
use relaychat_core::Error;
use relaychat_core::ports::{ReceiptMove, Receipts};
use relaychat_schema::{ConversationId, DeliveryStatus, MessageId, UserId};

use super::{DynamoStore, Item, get_n, is_condition_failed, n, s, time};
use crate::aws::classify;

/// BatchWriteItem's limit.
const BATCH: usize = 25;
/// Tries at the items DynamoDB leaves unprocessed (throttled) before the call is retried whole.
const UNPROCESSED_TRIES: u32 = 5;

/// A READ receipt item.
pub(crate) fn read_item(message: MessageId, conversation: &ConversationId, reader: &UserId, at: DateTime<Utc>) -> Item {
    [
        ("messageId", s(message.to_string())),
        ("userId", s(reader.as_str())),
        ("status", s(DeliveryStatus::Read.as_str())),
        ("statusRank", n(DeliveryStatus::Read.rank())),
        ("conversationId", s(conversation.as_str())),
        ("updatedAt", time(at)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

impl Receipts for DynamoStore {
    async fn advance_receipt(
        &self,
        message: MessageId,
        conversation: &ConversationId,
        recipient: &UserId,
        status: DeliveryStatus,
        at: DateTime<Utc>,
    ) -> Result<ReceiptMove, Error> {
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
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(ReceiptMove::Moved),
            Err(e) if is_condition_failed(&e) => {
                use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
                let rank = match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                        c.item().and_then(|i| get_n(i, "statusRank"))
                    }
                    _ => None,
                };
                Ok(if rank == Some(i64::from(status.rank())) {
                    ReceiptMove::AlreadyThere
                } else {
                    ReceiptMove::Beyond
                })
            }
            Err(e) => Err(classify("advance receipt", e)),
        }
    }

    async fn mark_read(
        &self,
        conversation: &ConversationId,
        reader: &UserId,
        messages: &[MessageId],
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        const OP: &str = "mark read";
        for chunk in messages.chunks(BATCH) {
            let mut requests = chunk
                .iter()
                .map(|m| {
                    PutRequest::builder()
                        .set_item(Some(read_item(*m, conversation, reader, at)))
                        .build()
                        .map(|p| WriteRequest::builder().put_request(p).build())
                        .map_err(|e| Error::rejected(OP, e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut tries = 0;
            while !requests.is_empty() {
                if tries == UNPROCESSED_TRIES {
                    return Err(Error::unavailable(OP, "DynamoDB kept leaving receipts unprocessed"));
                }
                if tries > 0 {
                    tokio::time::sleep(Duration::from_millis(50 << tries)).await;
                }
                tries += 1;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(self.tables.receipts(), requests)
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))?;
                requests = out
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.tables.receipts()))
                    .cloned()
                    .unwrap_or_default();
            }
        }
        Ok(())
    }
}
