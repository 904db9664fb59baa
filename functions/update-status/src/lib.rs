//! update-status: `message-status-events` → forward-only receipts in DynamoDB (SENT → DELIVERED →
//! READ; READ covers every message up to the one named), each change pushed to the sender.

use aws_lambda_events::event::kafka::KafkaEvent;
use relaychat_core::Error;
use relaychat_core::batch::{RecordHandler, run_batch};
use relaychat_core::ports::{ConnectionDirectory, DeadLetters, FramePusher, MessageStore, ReadState, Receipts};
use relaychat_core::status::apply_status_update;
use relaychat_schema::{DecodedRecord, KafkaBatchResponse, MessageStatusUpdate};

pub const CONSUMER: &str = "update-status";

pub struct UpdateStatus<S, F, D> {
    pub store: S,
    pub pusher: F,
    pub dead_letters: D,
}

impl<S, F, D> UpdateStatus<S, F, D>
where
    S: MessageStore + ReadState + Receipts + ConnectionDirectory,
    F: FramePusher,
    D: DeadLetters,
{
    pub async fn invoke(&self, event: &KafkaEvent) -> KafkaBatchResponse {
        run_batch(event, &self.dead_letters, self).await
    }
}

impl<S, F, D> RecordHandler for UpdateStatus<S, F, D>
where
    S: MessageStore + ReadState + Receipts + ConnectionDirectory,
    F: FramePusher,
    D: DeadLetters,
{
    async fn handle(&self, record: &DecodedRecord) -> Result<(), Error> {
        let update: MessageStatusUpdate = record.parse()?;
        apply_status_update(&self.store, &self.pusher, &update)
            .await
            .map(|_| ())
    }
}
