//! DynamoDB Local's own write capacity on this machine, measured just before a load runs on it:
//! `WRITERS` clients each putting small items one after another into a scratch table, as fast as
//! they are answered. The load proof sets its rate against this (the saturation goal:
//! capacity ÷ DynamoDB calls a message).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use relaychat_testkit::{aws_config, unique};

/// Writers at once (the functions of a busy runtime have about as many calls in flight).
pub const WRITERS: usize = 16;

/// Writes a second DynamoDB Local completed over `spell`, with [`WRITERS`] writers.
pub async fn dynamodb_writes_per_second(endpoint: &str, spell: Duration) -> f64 {
    let config = aws_config().await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .endpoint_url(endpoint)
            .build(),
    );
    let table = unique("capacity");
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .send()
        .await
        .expect("create the scratch table");
    let done = Arc::new(AtomicUsize::new(0));
    let until = tokio::time::Instant::now() + spell;
    let body = "x".repeat(300);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (client, table, done, body) = (client.clone(), table.clone(), done.clone(), body.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while tokio::time::Instant::now() < until {
                    let put = client
                        .put_item()
                        .table_name(&table)
                        .item("pk", AttributeValue::S(format!("w{w}-{n}")))
                        .item("body", AttributeValue::S(body.clone()))
                        .send()
                        .await;
                    if put.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    let _ = client.delete_table().table_name(&table).send().await;
    done.load(Ordering::Relaxed) as f64 / spell.as_secs_f64()
}
