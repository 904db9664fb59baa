//! deliver-message: `chat-messages` → each recipient's live connections (`@connections`); a
//! DELIVERED event on `message-status-events` for recipients reached, a `notifications` event for
//! the others; edits and deletions as frames to every member. Stale connections (410 Gone) are
//! removed.

use relaychat_adapters::connections_api::ConnectionsApi;
use relaychat_adapters::dynamo::DynamoStore;
use relaychat_adapters::kafka::KafkaDeadLetters;
use relaychat_adapters::kafka::KafkaPublisher;
use relaychat_adapters::{ConfigError, Deps};
use relaychat_core::Error;
use relaychat_core::batch::{EachEvent, run_batch};
use relaychat_core::delivery::deliver_event;
use relaychat_core::function::KafkaFunction;
use relaychat_core::ports::{ConnectionDirectory, DeadLetters, FramePoster, MemberPages, Publisher};
use relaychat_core::recent::RecentConnections;
use relaychat_schema::MskEvent;
use relaychat_schema::{ChatEvent, KafkaBatchResponse, Topics};

/// The function's name: its consumer group, and its dead-letter topic `deliver-message-dlq`.
pub const NAME: &str = "deliver-message";

pub struct DeliverMessage<M, C, F, P, D> {
    /// A large group's members, page by page.
    pub members: M,
    pub directory: C,
    pub poster: F,
    pub publisher: P,
    pub dead_letters: D,
    pub topics: Topics,
}

impl<M, C, F, P, D> DeliverMessage<M, C, F, P, D>
where
    M: MemberPages,
    C: ConnectionDirectory,
    F: FramePoster,
    P: Publisher,
    D: DeadLetters,
{
    pub async fn invoke(&self, event: &MskEvent) -> KafkaBatchResponse {
        run_batch(event, &self.dead_letters, self).await
    }
}

impl<M, C, F, P, D> EachEvent for DeliverMessage<M, C, F, P, D>
where
    M: MemberPages,
    C: ConnectionDirectory,
    F: FramePoster,
    P: Publisher,
    D: DeadLetters,
{
    type Event = ChatEvent;

    async fn handle_event(&self, event: &ChatEvent) -> Result<(), Error> {
        deliver_event(
            &self.members,
            &self.directory,
            &self.poster,
            &self.publisher,
            &self.topics,
            event,
        )
        .await
    }
}

/// deliver-message as deployed, on DynamoDB, @connections and Kafka.
pub type Deployed =
    DeliverMessage<DynamoStore, RecentConnections<DynamoStore>, ConnectionsApi, KafkaPublisher, KafkaDeadLetters>;

/// The one place deliver-message is wired: Lambda's `main.rs` and the local runtime both build it here.
pub async fn build(deps: Deps) -> Result<Deployed, ConfigError> {
    Ok(DeliverMessage {
        poster: deps.connections_api()?,
        dead_letters: deps.dead_letters(NAME),
        directory: deps.connection_directory()?,
        members: deps.store,
        publisher: deps.publisher,
        topics: deps.topics,
    })
}

impl KafkaFunction for Deployed {
    fn invoke(&self, event: &MskEvent) -> impl Future<Output = KafkaBatchResponse> + Send {
        DeliverMessage::invoke(self, event)
    }
}
