//! push-notification: `notifications` → FCM HTTP v1 for each of the user's devices, once; a token
//! FCM reports unregistered is deleted; the history is kept 30 days.

use aws_lambda_events::event::kafka::KafkaEvent;
use relaychat_core::Error;
use relaychat_core::batch::{RecordHandler, run_batch};
use relaychat_core::ports::{DeadLetters, DeviceStore, NotificationLog, PushSender};
use relaychat_core::push::send_notification;
use relaychat_schema::{DecodedRecord, KafkaBatchResponse, Notification};

pub const CONSUMER: &str = "push-notification";

pub struct PushNotification<S, P, D> {
    pub store: S,
    pub push: P,
    pub dead_letters: D,
}

impl<S: NotificationLog + DeviceStore, P: PushSender, D: DeadLetters> PushNotification<S, P, D> {
    pub async fn invoke(&self, event: &KafkaEvent) -> KafkaBatchResponse {
        run_batch(event, &self.dead_letters, self).await
    }
}

impl<S: NotificationLog + DeviceStore, P: PushSender, D: DeadLetters> RecordHandler for PushNotification<S, P, D> {
    async fn handle(&self, record: &DecodedRecord) -> Result<(), Error> {
        let notification: Notification = record.parse()?;
        send_notification(&self.store, &self.push, &notification)
            .await
            .map(|_| ())
    }
}
