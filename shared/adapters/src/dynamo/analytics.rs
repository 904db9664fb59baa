//! Analytics counters with per-stream watermarks, applied in one transaction.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use relaychat_core::Error;
use relaychat_core::ports::{AnalyticsStore, CounterKey};

use super::{DynamoStore, get_n, n, s};
use crate::aws::classify;

fn watermark_key(stream: &str) -> String {
    format!("watermark#{stream}")
}

impl AnalyticsStore for DynamoStore {
    async fn watermark(&self, stream: &str) -> Result<Option<i64>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(self.tables.analytics())
            .key("counter", s(watermark_key(stream)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("read watermark", e))?;
        Ok(out.item().and_then(|i| get_n(i, "offset")))
    }

    async fn apply(
        &self,
        stream: &str,
        expected: Option<i64>,
        to: i64,
        increments: &[(CounterKey, i64)],
    ) -> Result<bool, Error> {
        const OP: &str = "apply counters";
        let mut watermark = Update::builder()
            .table_name(self.tables.analytics())
            .key("counter", s(watermark_key(stream)))
            .update_expression("SET #offset = :to")
            .expression_attribute_names("#offset", "offset")
            .expression_attribute_values(":to", n(to));
        watermark = match expected {
            Some(w) => watermark
                .condition_expression("#offset = :expected")
                .expression_attribute_values(":expected", n(w)),
            None => watermark.condition_expression("attribute_not_exists(#offset)"),
        };
        let mut writes = vec![
            TransactWriteItem::builder()
                .update(watermark.build().map_err(|e| Error::rejected(OP, e))?)
                .build(),
        ];
        // A transaction may touch an item once: one update per counter row, one ADD per field.
        let mut rows: BTreeMap<&str, Vec<(&str, i64)>> = BTreeMap::new();
        for (key, amount) in increments {
            rows.entry(key.counter.as_str())
                .or_default()
                .push((key.field.as_str(), *amount));
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
        self.guarded_transaction(writes, OP).await
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
