//! Creating the tables, for DynamoDB Local and tests (the `dev` feature); in AWS the template
//! creates them.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};

use super::{CONNECTIONS_BY_USER, TABLES, TableNames};

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, aws_sdk_dynamodb::error::BuildError> {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build()
}

fn attr(name: &str) -> Result<AttributeDefinition, aws_sdk_dynamodb::error::BuildError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
}

/// Creates any missing table (on-demand, with its index and TTL).
/// For DynamoDB Local and tests; in AWS the template creates them.
pub async fn create_tables(
    client: &Client,
    names: &TableNames,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    for spec in TABLES {
        let table = names.name(spec.base);
        let mut keys = vec![key(spec.partition_key, KeyType::Hash)?];
        let mut attrs = vec![attr(spec.partition_key)?];
        if let Some(sort) = spec.sort_key {
            keys.push(key(sort, KeyType::Range)?);
            attrs.push(attr(sort)?);
        }
        let mut request = client
            .create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(keys));
        if spec.base == "connections" {
            attrs.push(attr("userId")?);
            request = request.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(CONNECTIONS_BY_USER)
                    .key_schema(key("userId", KeyType::Hash)?)
                    .key_schema(key("connectionId", KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::Include)
                            .non_key_attributes("expiresAt")
                            .build(),
                    )
                    .build()?,
            );
        }
        match request.set_attribute_definitions(Some(attrs)).send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => continue,
            Err(e) => return Err(e.into()),
        }
        if let Some(ttl) = spec.ttl_attribute {
            client
                .update_time_to_live()
                .table_name(&table)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(ttl)
                        .enabled(true)
                        .build()?,
                )
                .send()
                .await?;
        }
    }
    Ok(())
}
