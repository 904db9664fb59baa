//! Live WebSocket connections, found by user through the `byUser` index.

use chrono::{DateTime, Utc};
use relaychat_core::Error;
use relaychat_core::limits::{Budget, Limited};
use relaychat_core::ports::{ConnectionDirectory, ConnectionRegistry, Identity};
use relaychat_schema::{ConnectionId, DisplayName, UserId};

use super::tables::CONNECTIONS_BY_USER;
use super::{DynamoStore, Item, get_s, n, query_items, s};
use crate::aws::classify;

impl ConnectionDirectory for DynamoStore {
    async fn connections_of(&self, user: &UserId) -> Result<Vec<ConnectionId>, Error> {
        // DynamoDB deletes expired items late (up to days): filter on the TTL too.
        let items: Vec<Item> = query_items(
            self.client
                .query()
                .table_name(self.tables.connections())
                .index_name(CONNECTIONS_BY_USER)
                .key_condition_expression("userId = :u")
                .filter_expression("expiresAt > :now")
                .expression_attribute_values(":u", s(user.as_str()))
                .expression_attribute_values(":now", n(Utc::now().timestamp())),
            "find connections",
        )
        .await?;
        Ok(items
            .iter()
            .filter_map(|i| super::readable("connection", i, |i| ConnectionId::parse(get_s(i, "connectionId")?).ok()))
            .collect())
    }

    async fn remove_connection(&self, connection: &ConnectionId) -> Result<(), Error> {
        self.client
            .delete_item()
            .table_name(self.tables.connections())
            .key("connectionId", s(connection.as_str()))
            .send()
            .await
            .map_err(|e| classify("remove connection", e))?;
        Ok(())
    }
}

/// How long a connection row lives without a refresh (API Gateway's own limit is 2 hours).
pub const CONNECTION_TTL_SECONDS: i64 = 2 * 60 * 60;

impl ConnectionRegistry for DynamoStore {
    async fn register(&self, connection: &ConnectionId, identity: &Identity) -> Result<(), Error> {
        let now = Utc::now();
        // Served until the token expires (or the row's TTL, whichever is first): after that the
        // connection is neither answered nor delivered to.
        let row_ttl = CONNECTION_TTL_SECONDS.min(
            identity
                .expires_at
                .map_or(CONNECTION_TTL_SECONDS, |t| (t - now).num_seconds()),
        );
        self.client
            .put_item()
            .table_name(self.tables.connections())
            .item("connectionId", s(connection.as_str()))
            .item("userId", s(identity.user.as_str()))
            .item("userName", s(identity.name.as_str()))
            .item("connectedAt", super::time(now))
            .item("expiresAt", super::ttl_after(now, row_ttl))
            .send()
            .await
            .map_err(|e| classify("register connection", e))?;
        Ok(())
    }

    async fn unregister(&self, connection: &ConnectionId) -> Result<(), Error> {
        self.remove_connection(connection).await
    }

    async fn identity_of(&self, connection: &ConnectionId) -> Result<Option<Identity>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(self.tables.connections())
            .key("connectionId", s(connection.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("read connection", e))?;
        let now = Utc::now().timestamp();
        Ok(out
            .item()
            .filter(|i| super::get_n(i, "expiresAt").is_some_and(|t| t > now))
            .and_then(|i| {
                super::readable("connection", i, |i| {
                    Some(Identity {
                        user: UserId::parse(get_s(i, "userId")?).ok()?,
                        name: DisplayName::parse(get_s(i, "userName")?).ok()?,
                        expires_at: super::get_n(i, "expiresAt").and_then(|t| DateTime::from_timestamp(t, 0)),
                    })
                })
            }))
    }

    async fn allow(&self, budget: Budget<'_>, action: Limited, now: DateTime<Utc>) -> Result<bool, Error> {
        // Two rounds: a write the SDK retried after a lost response may already have started the
        // window (or counted this request), and then fails its own condition on the retry. A
        // second round counts the request in that window, so only a spent budget refuses (a
        // request counted twice spends the budget a little early, never refuses a slow sender).
        for _ in 0..2 {
            if self.count_in_window(budget, action, now).await? || self.start_window(budget, action, now).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// How long a user's HTTP budget row outlives its last use (the table's TTL deletes it).
const USER_BUDGET_TTL_SECS: i64 = 24 * 60 * 60;

impl DynamoStore {
    /// One more in the current window, while under the limit.
    async fn count_in_window(&self, budget: Budget<'_>, action: Limited, now: DateTime<Utc>) -> Result<bool, Error> {
        let limit = ("#c < :max", action.limit().max);
        self.budget_write(budget, action, now, "ADD #c :one", "#w = :w", Some(limit))
            .await
    }

    /// A new window, counting this request, if the stored one is older (or none).
    async fn start_window(&self, budget: Budget<'_>, action: Limited, now: DateTime<Utc>) -> Result<bool, Error> {
        self.budget_write(
            budget,
            action,
            now,
            "SET #w = :w, #c = :one",
            "(attribute_not_exists(#w) OR #w < :w)",
            None,
        )
        .await
    }

    /// A conditional write to `budget` for `action`; `false` when the condition (or, for a
    /// connection's budget, the connection) is not there.
    ///
    /// A connection's budget is in its row. A user's (HTTP) is a row of its own in the same table,
    /// keyed `user#<id>`: API Gateway's connection ids never hold `#`, and the row has no `userId`,
    /// so the `byUser` index never lists it as a connection; its `expiresAt` lets TTL delete it.
    async fn budget_write(
        &self,
        budget: Budget<'_>,
        action: Limited,
        now: DateTime<Utc>,
        update: &str,
        window_condition: &str,
        limit: Option<(&str, u32)>,
    ) -> Result<bool, Error> {
        let (key, mut condition, update) = match budget {
            Budget::Connection(connection) => (
                connection.to_string(),
                format!("attribute_exists(connectionId) AND {window_condition}"),
                update.to_owned(),
            ),
            Budget::User(user) => (
                format!("user#{user}"),
                window_condition.to_owned(),
                match update.strip_prefix("SET ") {
                    Some(sets) => format!("SET expiresAt = :expires, {sets}"),
                    None => format!("{update} SET expiresAt = :expires"),
                },
            ),
        };
        let mut request = self
            .client
            .update_item()
            .table_name(self.tables.connections())
            .key("connectionId", s(&key))
            .update_expression(update)
            .expression_attribute_names("#w", format!("{}Window", action.name()))
            .expression_attribute_names("#c", format!("{}Count", action.name()))
            .expression_attribute_values(":w", n(action.window(now)))
            .expression_attribute_values(":one", n(1));
        if let Budget::User(_) = budget {
            request = request.expression_attribute_values(":expires", n(now.timestamp() + USER_BUDGET_TTL_SECS));
        }
        if let Some((under, max)) = limit {
            condition = format!("{condition} AND {under}");
            request = request.expression_attribute_values(":max", n(max));
        }
        match request.condition_expression(condition).send().await {
            Ok(_) => Ok(true),
            Err(e) if super::is_condition_failed(&e) => Ok(false),
            Err(e) => Err(classify("rate-limit", e)),
        }
    }
}

impl DynamoStore {
    /// Registers a live connection for a user (what `$connect` does).
    pub async fn put_connection(&self, connection: &ConnectionId, user: &UserId, name: &str) -> Result<(), Error> {
        let name = DisplayName::parse(name).map_err(Error::Invalid)?;
        self.register(
            connection,
            &Identity {
                user: user.clone(),
                name,
                expires_at: None,
            },
        )
        .await
    }
}
