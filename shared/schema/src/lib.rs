//! relaychat's wire types, shared by every function: the events on each Kafka topic, the ids and
//! limits they carry, the topic catalogue, the server-to-client frames, and the decoding of Lambda
//! Kafka events. No I/O lives here.

mod error;
pub mod events;
pub mod frames;
pub mod gateway;
pub mod http;
pub mod ids;
pub mod kafka;
pub mod protocol;
pub mod text;
mod time;
pub mod topics;

pub use error::SchemaError;
pub use events::{
    AnalyticsEvent, AnalyticsKind, Change, ChatEvent, ChatMessage, ConnectionChange, DeliveryStatus, MessageChange,
    MessageStatusUpdate, Notification, PresenceChange, SCHEMA_VERSION, TypingIndicator,
};
pub use ids::{ClientMessageId, ConnectionId, ConversationId, DeviceToken, MessageId, UserId};
pub use kafka::{BatchItemFailure, DecodedRecord, KafkaBatchResponse, MskEvent, PartitionBatch, RawRecord, RecordId};
pub use text::{DisplayName, MessageContent, Title};
pub use topics::{TopicKind, Topics};
