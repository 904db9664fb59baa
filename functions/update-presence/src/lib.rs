//! update-presence: `presence-events` (connects and disconnects, keyed by user) → each user's
//! presence, told to the users who share a conversation with them when it changed. A disconnect
//! waits `PRESENCE_GRACE_MS` (default 3,000) for a reconnect first (`relaychat_core::presence`).

use std::time::Duration;

use relaychat_adapters::connections_api::ConnectionsApi;
use relaychat_adapters::dynamo::DynamoStore;
use relaychat_adapters::kafka::KafkaDeadLetters;
use relaychat_adapters::{ConfigError, Deps, optional_millis};
use relaychat_core::Error;
use relaychat_core::batch::{EachEvent, run_batch};
use relaychat_core::function::KafkaFunction;
use relaychat_core::ports::{ConnectionDirectory, ConversationStore, DeadLetters, FramePoster, PresenceStore};
use relaychat_core::presence::{DEFAULT_GRACE, PresencePorts, settle};
use relaychat_schema::{KafkaBatchResponse, MskEvent, PresenceChange};

/// The function's name: its consumer group, and its dead-letter topic `update-presence-dlq`.
pub const NAME: &str = "update-presence";

pub struct UpdatePresence<S, F, D> {
    /// Connections (read live, never remembered: they are what presence is), presence records
    /// and conversations.
    pub store: S,
    pub poster: F,
    pub dead_letters: D,
    pub grace: Duration,
}

impl<S, F, D> UpdatePresence<S, F, D>
where
    S: ConnectionDirectory + PresenceStore + ConversationStore,
    F: FramePoster,
    D: DeadLetters,
{
    pub async fn invoke(&self, event: &MskEvent) -> KafkaBatchResponse {
        run_batch(event, &self.dead_letters, self).await
    }
}

impl<S, F, D> EachEvent for UpdatePresence<S, F, D>
where
    S: ConnectionDirectory + PresenceStore + ConversationStore,
    F: FramePoster,
    D: DeadLetters,
{
    type Event = PresenceChange;

    async fn handle_event(&self, change: &PresenceChange) -> Result<(), Error> {
        let ports = PresencePorts {
            directory: &self.store,
            presence: &self.store,
            conversations: &self.store,
            poster: &self.poster,
        };
        settle(&ports, change, self.grace).await.map(|_| ())
    }
}

/// update-presence as deployed, on DynamoDB, @connections and Kafka.
pub type Deployed = UpdatePresence<DynamoStore, ConnectionsApi, KafkaDeadLetters>;

/// The one place update-presence is wired: Lambda's `main.rs` and the local runtime both build it here.
pub async fn build(deps: Deps) -> Result<Deployed, ConfigError> {
    let grace = optional_millis("PRESENCE_GRACE_MS", DEFAULT_GRACE)?;
    Ok(UpdatePresence {
        poster: deps.connections_api()?,
        dead_letters: deps.dead_letters(NAME),
        store: deps.store,
        grace,
    })
}

impl KafkaFunction for Deployed {
    fn invoke(&self, event: &MskEvent) -> impl Future<Output = KafkaBatchResponse> + Send {
        UpdatePresence::invoke(self, event)
    }
}
