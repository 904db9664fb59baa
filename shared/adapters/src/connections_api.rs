//! API Gateway's `@connections` management API: frames down live WebSocket connections.

use aws_config::SdkConfig;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use relaychat_core::Error;
use relaychat_core::ports::{FramePoster, PostOutcome};
use relaychat_schema::ConnectionId;

use crate::ConfigError;
use crate::aws::classify;

#[derive(Debug, Clone)]
pub struct ConnectionsApi {
    client: Client,
}

impl ConnectionsApi {
    /// `endpoint` is the API's callback URL, `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`
    /// (or the local gateway's `http://127.0.0.1:3001/local`).
    pub fn new(config: &SdkConfig, endpoint: &str) -> Self {
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(config)
            .endpoint_url(endpoint)
            .build();
        Self {
            client: Client::from_conf(conf),
        }
    }

    /// From `WEBSOCKET_CALLBACK_URL`.
    pub fn from_env(config: &SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(config, &crate::required("WEBSOCKET_CALLBACK_URL")?))
    }
}

impl FramePoster for ConnectionsApi {
    async fn post(&self, connection: &ConnectionId, frame: &[u8]) -> Result<PostOutcome, Error> {
        let sent = self
            .client
            .post_to_connection()
            .connection_id(connection.as_str())
            .data(Blob::new(frame))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(PostOutcome::Delivered),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_gone_exception()) => Ok(PostOutcome::Gone),
            Err(e) => Err(classify("post to connection", e)),
        }
    }
}
