//! update-status: `message-status-events` → forward-only receipts in DynamoDB (SENT → DELIVERED →
//! READ; READ covers every message up to the one named, worked through in bounded pieces), each
//! change pushed to the sender.

use aws_lambda_events::event::kafka::KafkaEvent;
use relaychat_core::Error;
use relaychat_core::batch::{RecordHandler, run_batch};
use relaychat_core::ports::{
    ConnectionDirectory, DeadLetters, FramePusher, MessageStore, Publisher, ReadState, Receipts,
};
use relaychat_core::status::{StatusPorts, apply_status_update};
use relaychat_schema::{DecodedRecord, KafkaBatchResponse, MessageStatusUpdate, Topics};

pub const CONSUMER: &str = "update-status";

pub struct UpdateStatus<S, F, P, D> {
    pub store: S,
    pub pusher: F,
    /// Carries a long READ on in another invocation (on `message-status-events`).
    pub publisher: P,
    pub dead_letters: D,
    pub topics: Topics,
}

impl<S, F, P, D> UpdateStatus<S, F, P, D>
where
    S: MessageStore + ReadState + Receipts + ConnectionDirectory,
    F: FramePusher,
    P: Publisher,
    D: DeadLetters,
{
    pub async fn invoke(&self, event: &KafkaEvent) -> KafkaBatchResponse {
        run_batch(event, &self.dead_letters, self).await
    }
}

impl<S, F, P, D> RecordHandler for UpdateStatus<S, F, P, D>
where
    S: MessageStore + ReadState + Receipts + ConnectionDirectory,
    F: FramePusher,
    P: Publisher,
    D: DeadLetters,
{
    async fn handle(&self, record: &DecodedRecord) -> Result<(), Error> {
        let update: MessageStatusUpdate = record.parse()?;
        let ports = StatusPorts {
            store: &self.store,
            pusher: &self.pusher,
            publisher: &self.publisher,
            topics: &self.topics,
        };
        apply_status_update(&ports, &update).await.map(|_| ())
    }
}
