//! Reading what the runtime stored, for the proofs: every item of its tables, and its messages.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use relaychat_adapters::dynamo::tables::TABLES;
use relaychat_adapters::dynamo::{DynamoStore, TableNames};

/// A store on the runtime's tables in the DynamoDB at `endpoint`.
pub async fn store(endpoint: &str, tables: &TableNames) -> DynamoStore {
    let config = relaychat_testkit::aws_config().await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .endpoint_url(endpoint)
            .build(),
    );
    DynamoStore::new(client, tables.clone())
}

/// Every item of every table, as sorted text: two snapshots are equal when nothing changed.
pub async fn snapshot(store: &DynamoStore) -> BTreeMap<String, Vec<String>> {
    let mut all = BTreeMap::new();
    for spec in TABLES {
        let table = store.tables().name(spec.base);
        let mut items: Vec<String> = Vec::new();
        let mut start = None;
        loop {
            let page = store
                .raw_client()
                .scan()
                .table_name(&table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan (tests only)");
            items.extend(page.items().iter().map(canonical_item));
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        items.sort();
        all.insert(spec.base.to_owned(), items);
    }
    all
}

/// An item as text with its attributes (and nested maps) in order, so equal items print equal.
fn canonical_item(item: &std::collections::HashMap<String, AttributeValue>) -> String {
    let sorted: BTreeMap<&String, String> = item.iter().map(|(k, v)| (k, canonical(v))).collect();
    format!("{sorted:?}")
}

fn canonical(v: &AttributeValue) -> String {
    match v {
        AttributeValue::M(m) => canonical_item(m),
        AttributeValue::L(l) => format!("{:?}", l.iter().map(canonical).collect::<Vec<_>>()),
        AttributeValue::Ss(s) | AttributeValue::Ns(s) => {
            let mut s = s.clone();
            s.sort();
            format!("{s:?}")
        }
        other => format!("{other:?}"),
    }
}

/// How many messages are stored in these conversations.
pub async fn messages_in(store: &DynamoStore, conversations: &[String]) -> usize {
    let mut total = 0;
    for c in conversations {
        let mut start = None;
        loop {
            let page = store
                .raw_client()
                .query()
                .table_name(store.tables().messages())
                .key_condition_expression("conversationId = :c")
                .expression_attribute_values(":c", AttributeValue::S(c.clone()))
                .select(aws_sdk_dynamodb::types::Select::Count)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("count messages");
            total += page.count() as usize;
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
    }
    total
}

/// Whether the item with this key exists (partition key, sort key).
pub async fn has_item(store: &DynamoStore, table: &str, (hk, hv): (&str, &str), (rk, rv): (&str, &str)) -> bool {
    store
        .raw_client()
        .get_item()
        .table_name(table)
        .key(hk, AttributeValue::S(hv.into()))
        .key(rk, AttributeValue::S(rv.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("read (tests)")
        .item()
        .is_some()
}
