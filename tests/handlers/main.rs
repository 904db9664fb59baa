//! Every function's handler, fed its sample event from events/, against DynamoDB Local, the
//! Kafka-API broker and the `@connections` emulator (`make test` starts them).

mod analytics;
mod deliver_message;
mod events;
mod http;
mod persist_message;
mod push_notification;
mod relay_typing;
mod support;
mod update_presence;
mod update_status;
mod ws;
