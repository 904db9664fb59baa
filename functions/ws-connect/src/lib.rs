//! ws-connect (`$connect`): verifies the token from `?token=`, then registers the connection.
//! A refused connect answers 401 and stores nothing.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chrono::Utc;
use relaychat_adapters::auth::JwtAuthenticator;
use relaychat_adapters::dynamo::DynamoStore;
use relaychat_adapters::kafka::KafkaPublisher;
use relaychat_adapters::{ConfigError, Deps};
use relaychat_core::actions::{Sender, record};
use relaychat_core::function::WebSocketFunction;
use relaychat_core::ports::{Authenticator, ConnectionRegistry, Publisher};
use relaychat_core::presence::connection_changed;
use relaychat_schema::gateway::{connection_id, query_parameter, response};
use relaychat_schema::{AnalyticsKind, ConnectionChange, Topics};
use tracing::{info, warn};

/// The function's name in the template and its logs.
pub const NAME: &str = "ws-connect";

/// How long registering may take: inside the function's 10 s timeout.
pub const REGISTER_BUDGET: std::time::Duration = std::time::Duration::from_secs(8);

pub struct WsConnect<A, R, P> {
    pub auth: A,
    pub registry: R,
    pub publisher: P,
    pub topics: Topics,
}

impl<A: Authenticator, R: ConnectionRegistry, P: Publisher> WsConnect<A, R, P> {
    pub async fn invoke(&self, request: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        let connection = match connection_id(request) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "connect without a valid connection id");
                return response(400, None);
            }
        };
        let identity = match self.auth.verify(query_parameter(request, "token").unwrap_or_default()) {
            Ok(identity) => identity,
            Err(e) => {
                info!(%connection, reason = %relaychat_core::chain(&e), "connect refused");
                relaychat_core::measure::connect_refused();
                return response(401, Some("Unauthorized".into()));
            }
        };
        // Inside the function's 10 s timeout: the client hears 503 from us, not a killed invocation.
        match tokio::time::timeout(REGISTER_BUDGET, self.registry.register(&connection, &identity)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(%connection, error = %e.chain(), "could not register the connection");
                // The client sees the connect fail and reconnects.
                return response(if e.is_retryable() { 503 } else { 500 }, None);
            }
            Err(_) => {
                warn!(%connection, "registering the connection ran out of time");
                return response(503, None);
            }
        }
        info!(%connection, user = %identity.user, "connected");
        let sender = Sender::socket(connection, identity);
        connection_changed(
            &self.publisher,
            &self.topics,
            &sender,
            ConnectionChange::Connected,
            Utc::now(),
        );
        record(
            &self.publisher,
            &self.topics,
            &sender,
            AnalyticsKind::Connected,
            None,
            Utc::now(),
        );
        response(200, None)
    }
}

/// ws-connect as deployed, on DynamoDB and Kafka.
pub type Deployed = WsConnect<JwtAuthenticator, DynamoStore, KafkaPublisher>;

/// The one place ws-connect is wired: Lambda's `main.rs` and the local runtime both build it here.
pub async fn build(deps: Deps) -> Result<Deployed, ConfigError> {
    Ok(WsConnect {
        auth: deps.authenticator().await?,
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
        WsConnect::invoke(self, request)
    }
}
