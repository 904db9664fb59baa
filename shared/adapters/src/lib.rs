//! Thin adapters from relaychat's ports to real services: DynamoDB, API Gateway's
//! `@connections` API, Kafka (rdkafka) and FCM HTTP v1. No business rule lives here.

pub mod auth;
pub mod aws;
pub mod connections_api;
mod deps;
pub use deps::Deps;
pub mod dynamo;
mod error;
pub use error::{optional, optional_millis, required};
pub mod fcm;
pub mod kafka;
pub mod lambda;
pub mod secrets;
pub mod telemetry;

pub use error::ConfigError;
