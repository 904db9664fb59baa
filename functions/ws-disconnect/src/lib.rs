//! ws-disconnect (`$disconnect`): forgets the connection. Safe to run twice.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chrono::Utc;
use relaychat_adapters::dynamo::DynamoStore;
use relaychat_adapters::kafka::KafkaPublisher;
use relaychat_adapters::{ConfigError, Deps};
use relaychat_core::actions::{Sender, record};
use relaychat_core::function::WebSocketFunction;
use relaychat_core::ports::{ConnectionRegistry, Publisher};
use relaychat_core::presence::connection_changed;
use relaychat_schema::gateway::{connection_id, response};
use relaychat_schema::{AnalyticsKind, ConnectionChange, Topics};
use tracing::{info, warn};

/// The function's name in the template and its logs.
pub const NAME: &str = "ws-disconnect";

pub struct WsDisconnect<R, P> {
    pub registry: R,
    pub publisher: P,
    pub topics: Topics,
}

impl<R: ConnectionRegistry, P: Publisher> WsDisconnect<R, P> {
    pub async fn invoke(&self, request: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        let Ok(connection) = connection_id(request) else {
            return response(400, None);
        };
        let identity = match self.registry.identity_of(&connection).await {
            Ok(identity) => identity,
            Err(e) => {
                warn!(%connection, error = %e.chain(), "could not read the connection");
                None
            }
        };
        // The row expires by TTL anyway; a failed delete only delays that.
        if let Err(e) = self.registry.unregister(&connection).await {
            warn!(%connection, error = %e.chain(), "could not remove the connection; its TTL will");
        }
        info!(%connection, reason = ?request.request_context.disconnect_reason, "disconnected");
        if let Some(identity) = identity {
            let sender = Sender::socket(connection, identity);
            connection_changed(
                &self.publisher,
                &self.topics,
                &sender,
                ConnectionChange::Disconnected,
                Utc::now(),
            );
            record(
                &self.publisher,
                &self.topics,
                &sender,
                AnalyticsKind::Disconnected,
                None,
                Utc::now(),
            );
        }
        response(200, None)
    }
}

/// ws-disconnect as deployed, on DynamoDB and Kafka.
pub type Deployed = WsDisconnect<DynamoStore, KafkaPublisher>;

/// The one place ws-disconnect is wired: Lambda's `main.rs` and the local runtime both build it here.
pub async fn build(deps: Deps) -> Result<Deployed, ConfigError> {
    Ok(WsDisconnect {
        registry: deps.store,
        publisher: deps.publisher,
        topics: deps.topics,
    })
}

impl WebSocketFunction for Deployed {
    fn invoke(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
    ) -> impl Future<Output = ApiGatewayProxyResponse> + Send {
        WsDisconnect::invoke(self, request)
    }
}
