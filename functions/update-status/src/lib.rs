//! update-status: `message-status-events` → forward-only receipts in DynamoDB (SENT → DELIVERED →
//! READ; READ covers every message up to the one named, worked through in bounded pieces), each
//! change posted to the sender.

use relaychat_adapters::connections_api::ConnectionsApi;
use relaychat_adapters::dynamo::DynamoStore;
use relaychat_adapters::kafka::KafkaDeadLetters;
use relaychat_adapters::kafka::KafkaPublisher;
use relaychat_adapters::{ConfigError, Deps};
use relaychat_core::Error;
use relaychat_core::batch::{EachEvent, run_batch};
use relaychat_core::function::KafkaFunction;
use relaychat_core::ports::{
    ConnectionDirectory, ConversationStore, DeadLetters, FramePoster, MessageStore, Publisher, ReadState, Receipts,
};
use relaychat_core::recent::RecentConnections;
use relaychat_core::status::{ReadByFrames, StatusPorts, apply_status_update};
use relaychat_schema::MskEvent;
use relaychat_schema::{KafkaBatchResponse, MessageStatusUpdate, Topics};

/// The function's name: its consumer group, and its dead-letter topic `update-status-dlq`.
pub const NAME: &str = "update-status";

pub struct UpdateStatus<S, C, F, P, D> {
    pub store: S,
    /// Where the status frames go: the senders' connections.
    pub directory: C,
    pub poster: F,
    /// Carries a long READ on in another invocation (on `message-status-events`).
    pub publisher: P,
    pub dead_letters: D,
    pub topics: Topics,
    /// When large groups last had a read-by frame from this execution environment.
    pub read_by: ReadByFrames,
}

impl<S, C, F, P, D> UpdateStatus<S, C, F, P, D>
where
    S: MessageStore + ReadState + Receipts + ConversationStore,
    C: ConnectionDirectory,
    F: FramePoster,
    P: Publisher,
    D: DeadLetters,
{
    pub async fn invoke(&self, event: &MskEvent) -> KafkaBatchResponse {
        run_batch(event, &self.dead_letters, self).await
    }
}

impl<S, C, F, P, D> EachEvent for UpdateStatus<S, C, F, P, D>
where
    S: MessageStore + ReadState + Receipts + ConversationStore,
    C: ConnectionDirectory,
    F: FramePoster,
    P: Publisher,
    D: DeadLetters,
{
    type Event = MessageStatusUpdate;

    async fn handle_event(&self, update: &MessageStatusUpdate) -> Result<(), Error> {
        let ports = StatusPorts {
            store: &self.store,
            directory: &self.directory,
            poster: &self.poster,
            publisher: &self.publisher,
            topics: &self.topics,
            read_by: &self.read_by,
        };
        apply_status_update(&ports, update).await.map(|_| ())
    }
}

/// update-status as deployed, on DynamoDB, @connections and Kafka.
pub type Deployed =
    UpdateStatus<DynamoStore, RecentConnections<DynamoStore>, ConnectionsApi, KafkaPublisher, KafkaDeadLetters>;

/// The one place update-status is wired: Lambda's `main.rs` and the local runtime both build it here.
pub async fn build(deps: Deps) -> Result<Deployed, ConfigError> {
    Ok(UpdateStatus {
        poster: deps.connections_api()?,
        dead_letters: deps.dead_letters(NAME),
        directory: deps.connection_directory()?,
        store: deps.store,
        publisher: deps.publisher,
        topics: deps.topics,
        read_by: ReadByFrames::default(),
    })
}

impl KafkaFunction for Deployed {
    fn invoke(&self, event: &MskEvent) -> impl Future<Output = KafkaBatchResponse> + Send {
        UpdateStatus::invoke(self, event)
    }
}
