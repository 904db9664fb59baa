//! relay-typing: `typing-events` → the other members' live connections. Nothing is stored; an
//! indicator older than ten seconds is dropped as stale.

use chrono::Utc;
use relaychat_adapters::connections_api::ConnectionsApi;
use relaychat_adapters::dynamo::DynamoStore;
use relaychat_adapters::kafka::KafkaDeadLetters;
use relaychat_adapters::{ConfigError, Deps};
use relaychat_core::Error;
use relaychat_core::batch::{EachEvent, run_batch};
use relaychat_core::function::KafkaFunction;
use relaychat_core::ports::{ConnectionDirectory, DeadLetters, FramePoster};
use relaychat_core::recent::RecentConnections;
use relaychat_core::typing::relay_typing;
use relaychat_schema::MskEvent;
use relaychat_schema::{KafkaBatchResponse, TypingIndicator};

/// The function's name: its consumer group, and its dead-letter topic `relay-typing-dlq`.
pub const NAME: &str = "relay-typing";

pub struct RelayTyping<C, F, D> {
    pub directory: C,
    pub poster: F,
    pub dead_letters: D,
}

impl<C: ConnectionDirectory, F: FramePoster, D: DeadLetters> RelayTyping<C, F, D> {
    pub async fn invoke(&self, event: &MskEvent) -> KafkaBatchResponse {
        run_batch(event, &self.dead_letters, self).await
    }
}

impl<C: ConnectionDirectory, F: FramePoster, D: DeadLetters> EachEvent for RelayTyping<C, F, D> {
    type Event = TypingIndicator;

    async fn handle_event(&self, indicator: &TypingIndicator) -> Result<(), Error> {
        relay_typing(&self.directory, &self.poster, indicator, Utc::now())
            .await
            .map(|_| ())
    }
}

/// relay-typing as deployed, on DynamoDB, @connections and Kafka.
pub type Deployed = RelayTyping<RecentConnections<DynamoStore>, ConnectionsApi, KafkaDeadLetters>;

/// The one place relay-typing is wired: Lambda's `main.rs` and the local runtime both build it here.
pub async fn build(deps: Deps) -> Result<Deployed, ConfigError> {
    Ok(RelayTyping {
        poster: deps.connections_api()?,
        dead_letters: deps.dead_letters(NAME),
        directory: deps.connection_directory()?,
    })
}

impl KafkaFunction for Deployed {
    fn invoke(&self, event: &MskEvent) -> impl Future<Output = KafkaBatchResponse> + Send {
        RelayTyping::invoke(self, event)
    }
}
