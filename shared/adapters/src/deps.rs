//! What every function is built from: the clients of one execution environment, made once.
//! Lambda takes them from the environment ([`Deps::from_env`]); the local runtime makes them for
//! its own servers. Each function crate's `build` takes what it needs from here, so a function is
//! wired in one place whichever runtime runs it.

use aws_config::SdkConfig;
use relaychat_core::actions::{DEFAULT_EDIT_WINDOW, Rules};
use relaychat_core::recent::{self, RecentConnections};
use relaychat_schema::Topics;

use crate::ConfigError;
use crate::auth::{JwtAuthenticator, TokenRules};
use crate::connections_api::ConnectionsApi;
use crate::dynamo::{DynamoStore, TableNames};
use crate::fcm::PushService;
use crate::kafka::{KafkaDeadLetters, KafkaPublisher};

#[derive(Clone)]
pub struct Deps {
    pub aws: SdkConfig,
    pub store: DynamoStore,
    pub publisher: KafkaPublisher,
    pub topics: Topics,
    /// The WebSocket API's callback URL for `@connections`; `None`: `WEBSOCKET_CALLBACK_URL`.
    pub callback_url: Option<String>,
    /// The JWT secret; `None`: `RELAYCHAT_JWT_SECRET`, or the Secrets Manager secret it names.
    pub jwt_secret: Option<String>,
}

impl Deps {
    /// As Lambda configures a function: the template's environment variables.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let aws = crate::aws::load_config().await;
        Ok(Self {
            store: DynamoStore::new(DynamoStore::client(&aws), TableNames::from_env()),
            publisher: KafkaPublisher::connect(&aws).await?,
            topics: Topics::from_env(),
            callback_url: None,
            jwt_secret: None,
            aws,
        })
    }

    /// Users' connections, each lookup trusted for `CONNECTION_CACHE_MS` (default 1,000; 0: never
    /// remembered): see `relaychat_core::recent` for what that staleness can and cannot cost. A
    /// value that is not a whole number of milliseconds stops the function at start.
    pub fn connection_directory(&self) -> Result<RecentConnections<DynamoStore>, ConfigError> {
        let ttl = crate::optional_millis("CONNECTION_CACHE_MS", recent::DEFAULT_TTL)?;
        Ok(RecentConnections::new(self.store.clone(), ttl))
    }

    /// The actions' rules: how long a sender may edit a message (`EDIT_WINDOW_MS`, default 15
    /// minutes). A value that is not a whole number of milliseconds stops the function at start.
    pub fn rules(&self) -> Result<Rules, ConfigError> {
        let window = crate::optional_millis("EDIT_WINDOW_MS", DEFAULT_EDIT_WINDOW)?;
        let edit_window = chrono::Duration::from_std(window).map_err(|_| ConfigError::Invalid {
            name: "EDIT_WINDOW_MS",
            reason: "too long".into(),
        })?;
        Ok(Rules { edit_window })
    }

    /// The `@connections` API of the WebSocket stage.
    pub fn connections_api(&self) -> Result<ConnectionsApi, ConfigError> {
        match &self.callback_url {
            Some(url) => Ok(ConnectionsApi::new(&self.aws, url)),
            None => ConnectionsApi::from_env(&self.aws),
        }
    }

    /// Where the function `consumer`'s unprocessable records go (`<consumer>-dlq`).
    pub fn dead_letters(&self, consumer: &str) -> KafkaDeadLetters {
        KafkaDeadLetters::new(self.publisher.clone(), consumer)
    }

    /// The token verifier, with the issuer and audience rules of the environment.
    pub async fn authenticator(&self) -> Result<JwtAuthenticator, ConfigError> {
        match &self.jwt_secret {
            Some(secret) => JwtAuthenticator::new(secret.as_bytes(), &TokenRules::from_env()),
            None => JwtAuthenticator::from_env(&self.aws).await,
        }
    }

    /// FCM, if a service account is configured.
    pub async fn push_service(&self) -> Result<PushService, ConfigError> {
        PushService::from_env(&self.aws).await
    }
}
