//! End to end: the local runtime (`make dev`'s code) on the real broker and DynamoDB Local, driven
//! by real WebSocket clients, with an independent Kafka client injecting and reading records.

mod cargo_lambda;
mod chat;
mod client;
mod conversations;
mod edits;
mod esm;
mod gateway;
mod http_api;
mod large_groups;
mod limits;
mod outage;
mod poison;
mod presence;
