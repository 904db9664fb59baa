//! The DynamoDB adapter: one store implementing every storage port. Tables and access patterns
//! are described in docs/data-model.md; every write that a redelivery may repeat is conditional.

mod analytics;
mod connections;
mod conversations;
mod large;
mod messages;
mod notifications;
mod presence;
mod receipts;
pub mod tables;

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::{DateTime, SecondsFormat, Utc};
use relaychat_core::Error;
use relaychat_schema::{ConversationId, UserId};

use crate::aws::classify;

pub use tables::TableNames;

/// Every storage port over DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    pub(crate) client: Client,
    pub(crate) tables: TableNames,
}

/// How many times BatchGetItem's unprocessed keys are asked for again before giving up.
const BATCH_GET_ROUNDS: u32 = 5;

impl DynamoStore {
    /// The items of `table` whose `key_name` is one of `keys` (those that exist).
    pub(crate) async fn batch_get(
        &self,
        table: &str,
        key_name: &str,
        keys: &[&str],
        op: &'static str,
    ) -> Result<Vec<Item>, Error> {
        let keys = keys
            .iter()
            .map(|k| [(key_name.to_owned(), s(*k))].into_iter().collect())
            .collect();
        self.batch_get_keys(table, keys, op).await
    }

    /// The items of `table` with these keys (those that exist): BatchGetItem, 100 keys a call,
    /// unprocessed keys asked for again with a short pause, a few times.
    pub(crate) async fn batch_get_keys(
        &self,
        table: &str,
        keys: Vec<Item>,
        op: &'static str,
    ) -> Result<Vec<Item>, Error> {
        let mut items = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut pending: Vec<Item> = chunk.to_vec();
            let mut round = 0;
            while !pending.is_empty() {
                if round == BATCH_GET_ROUNDS {
                    return Err(Error::unavailable(op, "keys left unprocessed after retries"));
                }
                if round > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(25 << round)).await;
                }
                round += 1;
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .build()
                    .map_err(|e| Error::rejected(op, e))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(table, request)
                    .send()
                    .await
                    .map_err(|e| classify(op, e))?;
                items.extend(
                    out.responses()
                        .and_then(|r| r.get(table))
                        .into_iter()
                        .flatten()
                        .cloned(),
                );
                pending = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
            }
        }
        Ok(items)
    }

    pub fn new(client: Client, tables: TableNames) -> Self {
        Self { client, tables }
    }

    /// A client from the shared AWS config; `DYNAMODB_ENDPOINT` (e.g. DynamoDB Local) overrides the endpoint.
    pub fn client(config: &SdkConfig) -> Client {
        let mut builder = aws_sdk_dynamodb::config::Builder::from(config);
        if let Some(endpoint) = crate::optional("DYNAMODB_ENDPOINT") {
            builder = builder.endpoint_url(endpoint);
        }
        Client::from_conf(builder.build())
    }

    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    pub fn raw_client(&self) -> &Client {
        &self.client
    }
}

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn time(t: DateTime<Utc>) -> AttributeValue {
    AttributeValue::S(t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// A row read into `T`, or `None` and a warning naming the row: a row this version cannot read
/// (written by another version, or by hand) is skipped, never silently.
pub(crate) fn readable<T>(what: &'static str, item: &Item, read: impl FnOnce(&Item) -> Option<T>) -> Option<T> {
    let parsed = read(item);
    if parsed.is_none() {
        let key: Vec<(&str, &str)> = ["conversationId", "messageId", "userId", "connectionId"]
            .into_iter()
            .filter_map(|k| Some((k, get_s(item, k)?)))
            .collect();
        tracing::warn!(what, ?key, "unreadable row skipped");
    }
    parsed
}

pub(crate) fn get_n(item: &Item, name: &str) -> Option<i64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

/// Epoch seconds for a TTL attribute.
pub(crate) fn ttl_after(now: DateTime<Utc>, seconds: i64) -> AttributeValue {
    n(now.timestamp() + seconds)
}

/// True when the error is a failed condition: the write was a repeat (or lost a race), not a fault.
pub(crate) fn is_condition_failed<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    err: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// What a cancelled transaction's reasons (one per item, in order) say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancellation {
    /// The first item's condition failed: a repeat, or a lost race. Nothing changed.
    GuardFailed,
    /// Throttled or in conflict with another transaction: not now, try again.
    Transient,
    /// Any other reason (a later item's condition, validation, item size): it will fail again.
    Permanent,
}

/// Tries at a transaction cancelled for throttling or a conflict (the SDK retries neither).
const TRANSACTION_ATTEMPTS: u32 = 3;

/// Cancellation codes that mean "not now" (DynamoDB's `CancellationReason.Code`).
const TRANSIENT_CANCELLATIONS: &[&str] = &[
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "TransactionConflict",
];

/// True when any reason is throttling or a conflict: the whole transaction may be tried again.
fn any_transient_cancellation<'a>(codes: impl IntoIterator<Item = Option<&'a str>>) -> bool {
    codes
        .into_iter()
        .flatten()
        .any(|c| TRANSIENT_CANCELLATIONS.contains(&c))
}

/// Classifies a cancellation from every reason, not only the first.
pub fn classify_cancellation<'a>(codes: impl IntoIterator<Item = Option<&'a str>>) -> Cancellation {
    let codes: Vec<Option<&str>> = codes.into_iter().collect();
    if codes.first().copied().flatten() == Some("ConditionalCheckFailed") {
        return Cancellation::GuardFailed;
    }
    if codes.iter().flatten().any(|c| TRANSIENT_CANCELLATIONS.contains(c)) {
        return Cancellation::Transient;
    }
    Cancellation::Permanent
}

/// A transaction DynamoDB cancelled: one reason code per item, in order, and the error itself
/// (kept as the source of whatever it becomes).
pub(crate) struct Cancelled {
    pub reasons: Vec<Option<String>>,
    pub error: relaychat_core::BoxError,
}

impl Cancelled {
    fn codes(&self) -> impl Iterator<Item = Option<&str>> {
        self.reasons.iter().map(Option::as_deref)
    }

    /// Throttled or in conflict somewhere: the whole transaction may be tried again.
    pub fn is_transient(&self) -> bool {
        any_transient_cancellation(self.codes())
    }

    /// The items (by index) whose condition failed.
    pub fn failed_conditions(&self) -> Vec<usize> {
        self.codes()
            .enumerate()
            .filter(|(_, code)| *code == Some("ConditionalCheckFailed"))
            .map(|(i, _)| i)
            .collect()
    }
}

impl DynamoStore {
    /// Runs a transaction: `Ok(Ok(()))` committed, `Ok(Err(cancelled))` cancelled with its
    /// reasons, `Err` for any other failure (classified).
    pub(crate) async fn transact(
        &self,
        writes: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
        operation: &'static str,
    ) -> Result<Result<(), Cancelled>, relaychat_core::Error> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        // The SDK retries throttling, but not a transaction cancelled because one of its items
        // was throttled or conflicted: that is retried here, a few times with backoff, before
        // the caller (and its event-source mapping's bounded retries) sees it.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes.clone()))
                .send()
                .await
            {
                Ok(_) => return Ok(Ok(())),
                Err(e) => e,
            };
            let reasons = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(t)) => t
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().map(str::to_owned))
                    .collect(),
                _ => return Err(crate::aws::classify(operation, err)),
            };
            let cancelled = Cancelled {
                reasons,
                error: Box::new(err),
            };
            let worth_again =
                cancelled.is_transient() && classify_cancellation(cancelled.codes()) != Cancellation::GuardFailed;
            if worth_again && attempt < TRANSACTION_ATTEMPTS {
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
                continue;
            }
            return Ok(Err(cancelled));
        }
    }

    /// Runs a transaction whose first item is its guard (a condition that fails on a repeat or a
    /// lost race). `Ok(false)`, having changed nothing, when that guard failed. A cancellation
    /// for throttling or a conflict is retryable; any other is permanent.
    pub(crate) async fn guarded_transaction(
        &self,
        writes: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
        operation: &'static str,
    ) -> Result<bool, relaychat_core::Error> {
        let cancelled = match self.transact(writes, operation).await? {
            Ok(()) => return Ok(true),
            Err(c) => c,
        };
        match classify_cancellation(cancelled.codes()) {
            Cancellation::GuardFailed => Ok(false),
            Cancellation::Transient => Err(relaychat_core::Error::unavailable(operation, cancelled.error)),
            Cancellation::Permanent => Err(relaychat_core::Error::rejected(operation, cancelled.error)),
        }
    }

    /// As `guarded_transaction`, for callers that look at the reasons themselves: the guard's
    /// failure and transient reasons are settled here; other cancellations come back.
    pub(crate) async fn transact_guarded(
        &self,
        writes: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
        operation: &'static str,
    ) -> Result<Guarded, relaychat_core::Error> {
        let cancelled = match self.transact(writes, operation).await? {
            Ok(()) => return Ok(Guarded::Committed),
            Err(c) => c,
        };
        match classify_cancellation(cancelled.codes()) {
            Cancellation::GuardFailed => Ok(Guarded::GuardFailed),
            Cancellation::Transient => Err(relaychat_core::Error::unavailable(operation, cancelled.error)),
            Cancellation::Permanent => Ok(Guarded::Cancelled(cancelled)),
        }
    }
}

/// How a guarded transaction ended, when the caller handles the other cancellations.
pub(crate) enum Guarded {
    Committed,
    GuardFailed,
    Cancelled(Cancelled),
}

impl DynamoStore {
    /// An update of a user's membership row, to be given its expressions.
    pub(crate) fn update_membership(
        &self,
        user: &UserId,
        conversation: &ConversationId,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(self.tables.memberships())
            .key("userId", s(user.as_str()))
            .key("conversationId", s(conversation.as_str()))
    }

    /// A user's membership row (consistent), with the attributes `projection` names.
    pub(crate) async fn membership(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        projection: &str,
        operation: &'static str,
    ) -> Result<Option<Item>, relaychat_core::Error> {
        let out = self
            .client
            .get_item()
            .table_name(self.tables.memberships())
            .key("userId", s(user.as_str()))
            .key("conversationId", s(conversation.as_str()))
            .projection_expression(projection)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| crate::aws::classify(operation, e))?;
        Ok(out.item)
    }
}

/// Sends a conditional update whose failed condition means it is done already (a position that
/// moved further, a value set before): only other errors are errors.
pub(crate) async fn update_unless_done(
    update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    operation: &'static str,
) -> Result<(), relaychat_core::Error> {
    match update.send().await {
        Ok(_) => Ok(()),
        Err(e) if is_condition_failed(&e) => Ok(()),
        Err(e) => Err(crate::aws::classify(operation, e)),
    }
}

/// The first `limit` items a query yields that `read` takes, page after page: `query` builds the
/// request from where the last page stopped and how many items are still wanted.
pub(crate) async fn query_up_to<T>(
    limit: usize,
    operation: &'static str,
    query: impl Fn(Option<Item>, i32) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    mut read: impl FnMut(&Item) -> Option<T>,
) -> Result<Vec<T>, relaychat_core::Error> {
    let limit = limit.max(1);
    let mut out = Vec::with_capacity(limit.min(1_000));
    let mut start: Option<Item> = None;
    loop {
        let room = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
        let page = query(start.take(), room)
            .send()
            .await
            .map_err(|e| crate::aws::classify(operation, e))?;
        out.extend(page.items().iter().filter_map(&mut read));
        start = page.last_evaluated_key().cloned();
        if out.len() >= limit || start.is_none() {
            break;
        }
    }
    out.truncate(limit);
    Ok(out)
}

/// Every item a query matches, across all its pages.
pub(crate) async fn query_items(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    operation: &'static str,
) -> Result<Vec<Item>, relaychat_core::Error> {
    query
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| crate::aws::classify(operation, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cancellation_reason_is_read() {
        use Cancellation::*;
        let cases: &[(&[Option<&str>], Cancellation)] = &[
            (&[Some("ConditionalCheckFailed"), Some("None")], GuardFailed),
            (&[Some("None"), Some("ThrottlingError")], Transient),
            (
                &[Some("None"), Some("None"), Some("ProvisionedThroughputExceeded")],
                Transient,
            ),
            (&[Some("TransactionConflict"), Some("None")], Transient),
            (&[Some("None"), Some("ConditionalCheckFailed")], Permanent),
            (&[Some("ValidationError")], Permanent),
            (&[None, Some("ItemCollectionSizeLimitExceeded")], Permanent),
            (&[], Permanent),
        ];
        for (codes, expected) in cases {
            assert_eq!(classify_cancellation(codes.iter().copied()), *expected, "{codes:?}");
        }
    }
}
