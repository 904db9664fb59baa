//! Creating the tables, for DynamoDB Local and tests (the `dev` feature); in AWS the template
//! creates them.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};

use super::{CONNECTIONS_BY_USER, MEMBERSHIPS_BY_CONVERSATION, TABLES, TableNames};

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
        if spec.base == "memberships" {
            request = request.global_secondary_indexes(members_index()?);
        }
        match request.set_attribute_definitions(Some(attrs)).send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {
                if spec.base == "memberships" {
                    add_members_index(client, &table).await?;
                }
                continue;
            }
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

/// Memberships by conversation: a large group's members, page by page.
fn members_index() -> Result<GlobalSecondaryIndex, aws_sdk_dynamodb::error::BuildError> {
    GlobalSecondaryIndex::builder()
        .index_name(MEMBERSHIPS_BY_CONVERSATION)
        .key_schema(key("conversationId", KeyType::Hash)?)
        .key_schema(key("userId", KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
        .build()
}

/// A memberships table made by an earlier version (a kept `make dev` database) gets the index.
async fn add_members_index(client: &Client, table: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use aws_sdk_dynamodb::types::{CreateGlobalSecondaryIndexAction, GlobalSecondaryIndexUpdate};
    let described = client.describe_table().table_name(table).send().await?;
    let has = described
        .table()
        .map(|t| t.global_secondary_indexes())
        .unwrap_or_default()
        .iter()
        .any(|i| i.index_name() == Some(MEMBERSHIPS_BY_CONVERSATION));
    if has {
        return Ok(());
    }
    let index = members_index()?;
    client
        .update_table()
        .table_name(table)
        .attribute_definitions(attr("conversationId")?)
        .attribute_definitions(attr("userId")?)
        .global_secondary_index_updates(
            GlobalSecondaryIndexUpdate::builder()
                .create(
                    CreateGlobalSecondaryIndexAction::builder()
                        .index_name(MEMBERSHIPS_BY_CONVERSATION)
                        .set_key_schema(Some(index.key_schema().to_vec()))
                        .set_projection(index.projection().cloned())
                        .build()?,
                )
                .build(),
        )
        .send()
        .await?;
    Ok(())
}
