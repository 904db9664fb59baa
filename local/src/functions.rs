//! The functions, in-process: the very handler code Lambda runs (each function crate's library),
//! wired to the local servers exactly as its `main.rs` wires them in AWS, by configuration alone.

use std::sync::Arc;

use futures::future::BoxFuture;

use analytics::Analytics;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::event::kafka::KafkaEvent;
use deliver_message::DeliverMessage;
use persist_message::PersistMessage;
use push_notification::PushNotification;
use relay_typing::RelayTyping;
use relaychat_adapters::auth::{JwtAuthenticator, TokenRules};
use relaychat_adapters::connections_api::ConnectionsApi;
use relaychat_adapters::dynamo::DynamoStore;
use relaychat_adapters::fcm::PushService;
use relaychat_adapters::kafka::{KafkaDeadLetters, KafkaPublisher};
use relaychat_schema::{KafkaBatchResponse, Topics};
use update_status::UpdateStatus;
use ws_connect::WsConnect;
use ws_disconnect::WsDisconnect;
use ws_message::WsMessage;

/// What every function is built from.
pub struct Wiring {
    pub aws: aws_config::SdkConfig,
    pub store: DynamoStore,
    pub publisher: KafkaPublisher,
    pub connections_endpoint: String,
    pub jwt_secret: String,
    pub topics: Topics,
}

/// A Kafka-triggered function.
pub enum KafkaFunction {
    PersistMessage(PersistMessage<DynamoStore, KafkaDeadLetters>),
    DeliverMessage(DeliverMessage<DynamoStore, ConnectionsApi, KafkaPublisher, KafkaDeadLetters>),
    UpdateStatus(UpdateStatus<DynamoStore, ConnectionsApi, KafkaPublisher, KafkaDeadLetters>),
    RelayTyping(RelayTyping<DynamoStore, ConnectionsApi, KafkaDeadLetters>),
    PushNotification(PushNotification<DynamoStore, PushService, KafkaDeadLetters>),
    Analytics(Analytics<DynamoStore, KafkaDeadLetters>),
}

impl KafkaFunction {
    /// The function of this binary name, or `None` if it is not a Kafka function.
    pub async fn build(name: &str, w: &Wiring) -> Result<Option<Self>, relaychat_adapters::ConfigError> {
        let dead_letters = KafkaDeadLetters::new(w.publisher.clone(), name);
        let pusher = || ConnectionsApi::new(&w.aws, &w.connections_endpoint);
        Ok(Some(match name {
            persist_message::CONSUMER => Self::PersistMessage(PersistMessage::new(w.store.clone(), dead_letters)),
            deliver_message::CONSUMER => Self::DeliverMessage(DeliverMessage {
                directory: w.store.clone(),
                pusher: pusher(),
                publisher: w.publisher.clone(),
                dead_letters,
                topics: w.topics.clone(),
            }),
            update_status::CONSUMER => Self::UpdateStatus(UpdateStatus {
                store: w.store.clone(),
                pusher: pusher(),
                publisher: w.publisher.clone(),
                dead_letters,
                topics: w.topics.clone(),
            }),
            relay_typing::CONSUMER => Self::RelayTyping(RelayTyping {
                directory: w.store.clone(),
                pusher: pusher(),
                dead_letters,
            }),
            push_notification::CONSUMER => Self::PushNotification(PushNotification {
                store: w.store.clone(),
                push: PushService::from_env(&w.aws).await?,
                dead_letters,
            }),
            analytics::CONSUMER => Self::Analytics(Analytics {
                store: w.store.clone(),
                dead_letters,
                topics: w.topics.clone(),
            }),
            _ => return Ok(None),
        }))
    }

    pub async fn invoke(&self, event: &KafkaEvent) -> KafkaBatchResponse {
        match self {
            Self::PersistMessage(f) => f.invoke(event).await,
            Self::DeliverMessage(f) => f.invoke(event).await,
            Self::UpdateStatus(f) => f.invoke(event).await,
            Self::RelayTyping(f) => f.invoke(event).await,
            Self::PushNotification(f) => f.invoke(event).await,
            Self::Analytics(f) => f.invoke(event).await,
        }
    }
}

/// A WebSocket route's function.
pub enum WebSocketFunction {
    // Boxed: the authenticator makes this variant much larger than the others.
    Connect(Box<WsConnect<JwtAuthenticator, DynamoStore, KafkaPublisher>>),
    Disconnect(WsDisconnect<DynamoStore, KafkaPublisher>),
    Message(WsMessage<DynamoStore, KafkaPublisher>),
}

impl WebSocketFunction {
    /// The function of this name, or `None` if it is not a WebSocket function.
    pub fn build(name: &str, w: &Wiring) -> Result<Option<Self>, relaychat_adapters::ConfigError> {
        Ok(Some(match name {
            "ws-connect" => Self::Connect(Box::new(WsConnect {
                auth: JwtAuthenticator::new(w.jwt_secret.as_bytes(), &TokenRules::from_env())?,
                registry: w.store.clone(),
                publisher: w.publisher.clone(),
                topics: w.topics.clone(),
            })),
            "ws-disconnect" => Self::Disconnect(WsDisconnect {
                registry: w.store.clone(),
                publisher: w.publisher.clone(),
                topics: w.topics.clone(),
            }),
            "ws-message" => Self::Message(WsMessage {
                store: w.store.clone(),
                publisher: w.publisher.clone(),
                topics: w.topics.clone(),
            }),
            _ => return Ok(None),
        }))
    }

    pub async fn invoke(&self, request: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        match self {
            Self::Connect(f) => f.invoke(request).await,
            Self::Disconnect(f) => f.invoke(request).await,
            Self::Message(f) => f.invoke(request).await,
        }
    }
}

/// What an event-source mapping invokes: a Kafka function (tests script their own).
pub trait InvokeKafka: Send + Sync {
    fn invoke_batch<'a>(&'a self, event: &'a KafkaEvent) -> BoxFuture<'a, KafkaBatchResponse>;
}

impl InvokeKafka for KafkaFunction {
    fn invoke_batch<'a>(&'a self, event: &'a KafkaEvent) -> BoxFuture<'a, KafkaBatchResponse> {
        Box::pin(self.invoke(event))
    }
}

pub type SharedKafkaFunction = Arc<dyn InvokeKafka>;
