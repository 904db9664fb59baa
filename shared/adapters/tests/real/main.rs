//! Adapter tests against the real services `make test` starts: DynamoDB Local, a Kafka-API
//! broker (Tansu), the `@connections` emulator, and a local HTTP stand-in for Google's endpoints.

mod connections_api;
mod dynamodb;
mod fcm;
mod kafka;
