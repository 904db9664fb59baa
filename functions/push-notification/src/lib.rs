//! push-notification: `notifications` → FCM HTTP v1 for each of the user's devices, once; a token
//! FCM reports unregistered is deleted; the history is kept 30 days.

use relaychat_adapters::dynamo::DynamoStore;
use relaychat_adapters::fcm::PushService;
use relaychat_adapters::kafka::KafkaDeadLetters;
use relaychat_adapters::{ConfigError, Deps};
use relaychat_core::Error;
use relaychat_core::batch::{EachEvent, run_batch};
use relaychat_core::function::KafkaFunction;
use relaychat_core::ports::{DeadLetters, DeviceStore, NotificationLog, PushSender};
use relaychat_core::push::send_notification;
use relaychat_schema::MskEvent;
use relaychat_schema::{KafkaBatchResponse, Notification};

/// The function's name: its consumer group, and its dead-letter topic `push-notification-dlq`.
pub const NAME: &str = "push-notification";

pub struct PushNotification<S, P, D> {
    pub store: S,
    pub push: P,
    pub dead_letters: D,
}

impl<S: NotificationLog + DeviceStore, P: PushSender, D: DeadLetters> PushNotification<S, P, D> {
    pub async fn invoke(&self, event: &MskEvent) -> KafkaBatchResponse {
        run_batch(event, &self.dead_letters, self).await
    }
}

impl<S: NotificationLog + DeviceStore, P: PushSender, D: DeadLetters> EachEvent for PushNotification<S, P, D> {
    type Event = Notification;

    async fn handle_event(&self, notification: &Notification) -> Result<(), Error> {
        send_notification(&self.store, &self.push, notification)
            .await
            .map(|_| ())
    }
}

/// push-notification as deployed, on DynamoDB, FCM and Kafka.
pub type Deployed = PushNotification<DynamoStore, PushService, KafkaDeadLetters>;

/// The one place push-notification is wired: Lambda's `main.rs` and the local runtime both build it here.
pub async fn build(deps: Deps) -> Result<Deployed, ConfigError> {
    Ok(PushNotification {
        push: deps.push_service().await?,
        dead_letters: deps.dead_letters(NAME),
        store: deps.store,
    })
}

impl KafkaFunction for Deployed {
    fn invoke(&self, event: &MskEvent) -> impl Future<Output = KafkaBatchResponse> + Send {
        PushNotification::invoke(self, event)
    }
}
