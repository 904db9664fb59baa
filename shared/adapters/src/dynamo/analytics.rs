//! Analytics counters: each record remembered by its identity (`counted#<id>`, kept a little
//! longer than any topic's retention) in the same transaction as its increments.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use chrono::Utc;
use relaychat_core::Error;
use relaychat_core::ports::{AnalyticsStore, Counted};

use super::{DynamoStore, get_n, n, s, ttl_after};
use crate::aws::classify;

/// How long a counted record is remembered: longer than the longest retention of a topic it can
/// be read (again) from (30 days).
const REMEMBER_SECONDS: i64 = 35 * 24 * 60 * 60;

fn marker_key(id: &str) -> String {
    format!("counted#{id}")
}

impl DynamoStore {
    fn counting_transaction(&self, records: &[&Counted]) -> Result<Vec<TransactWriteItem>, Error> {
        const OP: &str = "apply counters";
        let now = Utc::now();
        let mut writes = Vec::with_capacity(records.len() * 2);
        for r in records {
            let put = Put::builder()
                .table_name(self.tables.analytics())
                .item("counter", s(marker_key(&r.id)))
                .item("expiresAt", ttl_after(now, REMEMBER_SECONDS))
                .condition_expression("attribute_not_exists(#c)")
                .expression_attribute_names("#c", "counter")
                .build()
                .map_err(|e| Error::rejected(OP, e))?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        // A transaction may touch an item once: one update per counter row, one ADD per field.
        let mut rows: BTreeMap<&str, BTreeMap<&str, i64>> = BTreeMap::new();
        for r in records {
            for key in &r.keys {
                *rows
                    .entry(key.counter.as_str())
                    .or_default()
                    .entry(key.field.as_str())
                    .or_default() += 1;
            }
        }
        for (counter, fields) in rows {
            let mut update = Update::builder()
                .table_name(self.tables.analytics())
                .key("counter", s(counter));
            let mut adds = Vec::new();
            for (i, (field, amount)) in fields.iter().enumerate() {
                adds.push(format!("#f{i} :v{i}"));
                update = update
                    .expression_attribute_names(format!("#f{i}"), *field)
                    .expression_attribute_values(format!(":v{i}"), n(amount));
            }
            let update = update
                .update_expression(format!("ADD {}", adds.join(", ")))
                .build()
                .map_err(|e| Error::rejected(OP, e))?;
            writes.push(TransactWriteItem::builder().update(update).build());
        }
        Ok(writes)
    }
}

impl AnalyticsStore for DynamoStore {
    async fn count_once(&self, records: &[Counted]) -> Result<usize, Error> {
        const OP: &str = "apply counters";
        let mut fresh: Vec<&Counted> = records.iter().collect();
        // Each cancelled try names the records counted before (their marker's condition failed);
        // they are dropped and the rest tried again.
        while !fresh.is_empty() {
            let writes = self.counting_transaction(&fresh)?;
            let cancelled = match self.transact(writes, OP).await? {
                Ok(()) => return Ok(fresh.len()),
                Err(c) => c,
            };
            if cancelled.is_transient() {
                return Err(Error::unavailable(OP, cancelled.error));
            }
            let repeats: Vec<usize> = cancelled
                .failed_conditions()
                .into_iter()
                .filter(|i| *i < fresh.len())
                .collect();
            if repeats.is_empty() {
                return Err(Error::rejected(OP, cancelled.error));
            }
            fresh = fresh
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !repeats.contains(i))
                .map(|(_, r)| r)
                .collect();
        }
        Ok(0)
    }

    async fn counters(&self, rows: &[String]) -> Result<BTreeMap<String, BTreeMap<String, i64>>, Error> {
        let keys: Vec<&str> = rows.iter().map(String::as_str).collect();
        let table = self.tables.analytics();
        let mut out = BTreeMap::new();
        for item in self.batch_get(&table, "counter", &keys, "read counters").await? {
            let Some(row) = item.get("counter").and_then(|v| v.as_s().ok()) else {
                continue;
            };
            let fields: BTreeMap<String, i64> = item
                .iter()
                .filter(|(name, _)| *name != "counter")
                .filter_map(|(name, value)| Some((name.clone(), value.as_n().ok()?.parse().ok()?)))
                .collect();
            out.insert(row.clone(), fields);
        }
        Ok(out)
    }
}

impl DynamoStore {
    /// A counter's value (for tests and dashboards).
    pub async fn counter(&self, counter: &str, field: &str) -> Result<i64, Error> {
        let out = self
            .client
            .get_item()
            .table_name(self.tables.analytics())
            .key("counter", s(counter))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("read counter", e))?;
        Ok(out.item().and_then(|i| get_n(i, field)).unwrap_or(0))
    }
}
