//! Adapter tests against the real services `make test` starts: DynamoDB Local, a Kafka-API
//! broker (Tansu), the `@connections` emulator, and a local HTTP stand-in for Google's endpoints.

mod connections_api;
mod dynamodb;
mod fcm;
mod kafka;

/// The DynamoDB adapter keeps the ports' contract, the same rules the in-memory fakes are held to.
mod contract {
    relaychat_core::port_contract_tests!(relaychat_testkit::dynamo_store().await);
}
