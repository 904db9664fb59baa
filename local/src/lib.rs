//! relaychat's local runtime (`make dev`): the functions of template.yaml, in-process, on a real
//! Kafka-API broker and DynamoDB Local, with event-source-mapping and API Gateway WebSocket
//! emulation. See docs/local-runtime.md.

pub mod esm;
pub mod functions;
pub mod gateway;
pub mod http_api;
pub mod infra;
pub mod invoke;
pub mod lambda_env;
pub mod otlp;
pub mod runtime;
pub mod template;
pub mod web;
