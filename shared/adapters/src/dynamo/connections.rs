//! Live WebSocket connections, found by user through the `byUser` index.

use chrono::Utc;
use relaychat_core::Error;
use relaychat_core::ports::ConnectionDirectory;
use relaychat_schema::{ConnectionId, UserId};

use super::tables::CONNECTIONS_BY_USER;
use super::{DynamoStore, Item, get_s, n, s};
use crate::aws::classify;

impl ConnectionDirectory for DynamoStore {
    async fn connections_of(&self, user: &UserId) -> Result<Vec<ConnectionId>, Error> {
        // DynamoDB deletes expired items late (up to days): filter on the TTL too.
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(self.tables.connections())
            .index_name(CONNECTIONS_BY_USER)
            .key_condition_expression("userId = :u")
            .filter_expression("expiresAt > :now")
            .expression_attribute_values(":u", s(user.as_str()))
            .expression_attribute_values(":now", n(Utc::now().timestamp()))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| classify("find connections", e))?;
        Ok(items
            .iter()
            .filter_map(|i| get_s(i, "connectionId"))
            .filter_map(|c| ConnectionId::parse(c).ok())
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

impl DynamoStore {
    /// Registers a live connection for a user (what `$connect` does).
    pub async fn put_connection(&self, connection: &ConnectionId, user: &UserId, name: &str) -> Result<(), Error> {
        let now = Utc::now();
        self.client
            .put_item()
            .table_name(self.tables.connections())
            .item("connectionId", s(connection.as_str()))
            .item("userId", s(user.as_str()))
            .item("userName", s(name))
            .item("connectedAt", super::time(now))
            .item("expiresAt", super::ttl_after(now, CONNECTION_TTL_SECONDS))
            .send()
            .await
            .map_err(|e| classify("register connection", e))?;
        Ok(())
    }
}
