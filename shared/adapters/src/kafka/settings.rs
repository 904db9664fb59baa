//! Connection settings: brokers, TLS and SASL (SCRAM, MSK IAM) from the environment, and the
//! bootstrap brokers of an MSK cluster.

use std::time::Duration;

use rdkafka::ClientConfig;

use super::KafkaContext;
use super::producer::DEFAULT_DELIVERY_TIMEOUT;
use crate::{ConfigError, optional, required};

#[derive(serde::Deserialize)]
struct ScramSecret {
    username: String,
    password: String,
}

/// The cluster's bootstrap string for the listener that matches the auth mechanism.
pub async fn msk_bootstrap_brokers(
    client: &aws_sdk_kafka::Client,
    cluster_arn: &str,
    mechanism: Option<&str>,
) -> Result<String, ConfigError> {
    let out = client
        .get_bootstrap_brokers()
        .cluster_arn(cluster_arn)
        .send()
        .await
        .map_err(|e| ConfigError::Discovery(Box::new(e.into_service_error())))?;
    let brokers = match mechanism {
        Some("AWS_MSK_IAM") => out.bootstrap_broker_string_sasl_iam(),
        Some(m) if m.starts_with("SCRAM") => out.bootstrap_broker_string_sasl_scram(),
        _ => out.bootstrap_broker_string_tls().or(out.bootstrap_broker_string()),
    };
    brokers.map(str::to_owned).ok_or(ConfigError::Invalid {
        name: "MSK_CLUSTER_ARN",
        reason: format!(
            "the cluster has no listener for {}",
            mechanism.unwrap_or("plaintext/TLS")
        ),
    })
}

/// How the client authenticates to the brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaAuth {
    None,
    /// SASL/SCRAM (MSK's SCRAM-SHA-512, or SHA-256 elsewhere).
    Scram {
        mechanism: String,
        username: String,
        password: String,
    },
    /// MSK IAM: SASL/OAUTHBEARER with a SigV4-signed token from the function's IAM role.
    MskIam {
        region: String,
    },
}

/// Connection settings, from `KAFKA_BROKERS`, `KAFKA_SSL_ENABLED`, `KAFKA_SASL_MECHANISM`,
/// `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    pub brokers: String,
    pub tls: bool,
    pub auth: KafkaAuth,
    pub client_id: String,
    /// How long a produce may take before it fails (librdkafka's `message.timeout.ms`).
    pub delivery_timeout: Duration,
}

impl KafkaSettings {
    pub fn plaintext(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            tls: false,
            auth: KafkaAuth::None,
            client_id: "relaychat".into(),
            delivery_timeout: DEFAULT_DELIVERY_TIMEOUT,
        }
    }

    /// From the environment alone: `KAFKA_BROKERS` is required, SCRAM credentials come from
    /// `KAFKA_SASL_USERNAME` / `KAFKA_SASL_PASSWORD`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::build(required("KAFKA_BROKERS")?, None)
    }

    /// As in AWS: brokers from `KAFKA_BROKERS`, else from `MSK_CLUSTER_ARN` (GetBootstrapBrokers,
    /// the listener that matches the auth); SCRAM credentials from the Secrets Manager secret
    /// `KAFKA_SCRAM_SECRET_ARN` (MSK's `{"username":…,"password":…}` shape) when set.
    pub async fn discover(aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let scram = match optional("KAFKA_SCRAM_SECRET_ARN") {
            Some(arn) => {
                let secret = crate::secrets::secret_string(aws, &arn).await?;
                let parsed: ScramSecret = serde_json::from_str(&secret).map_err(|e| ConfigError::Secret {
                    id: arn.clone(),
                    source: Box::new(e),
                })?;
                Some((parsed.username, parsed.password))
            }
            None => None,
        };
        let brokers = match optional("KAFKA_BROKERS") {
            Some(brokers) => brokers,
            None => {
                let arn = optional("MSK_CLUSTER_ARN").ok_or(ConfigError::Missing { name: "KAFKA_BROKERS" })?;
                let client = aws_sdk_kafka::Client::new(aws);
                msk_bootstrap_brokers(&client, &arn, optional("KAFKA_SASL_MECHANISM").as_deref()).await?
            }
        };
        Self::build(brokers, scram)
    }

    fn build(brokers: String, scram: Option<(String, String)>) -> Result<Self, ConfigError> {
        let tls = match optional("KAFKA_SSL_ENABLED")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "KAFKA_SSL_ENABLED",
                    reason: format!("{other:?} is not true/false"),
                });
            }
        };
        let auth = match optional("KAFKA_SASL_MECHANISM").as_deref() {
            None | Some("NONE") => KafkaAuth::None,
            Some(m @ ("SCRAM-SHA-512" | "SCRAM-SHA-256")) => {
                let (username, password) = match scram {
                    Some(credentials) => credentials,
                    None => (required("KAFKA_SASL_USERNAME")?, required("KAFKA_SASL_PASSWORD")?),
                };
                KafkaAuth::Scram {
                    mechanism: m.to_owned(),
                    username,
                    password,
                }
            }
            Some("AWS_MSK_IAM") => KafkaAuth::MskIam {
                region: optional("AWS_REGION").ok_or(ConfigError::Missing { name: "AWS_REGION" })?,
            },
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "KAFKA_SASL_MECHANISM",
                    reason: format!("{other:?} is not one of NONE, SCRAM-SHA-512, SCRAM-SHA-256, AWS_MSK_IAM"),
                });
            }
        };
        Ok(Self {
            brokers,
            tls,
            auth,
            client_id: optional("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| "relaychat".into()),
            delivery_timeout: DEFAULT_DELIVERY_TIMEOUT,
        })
    }

    /// The librdkafka properties for these settings (shared by producers and consumers).
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id);
        let protocol = match (&self.auth, self.tls) {
            (KafkaAuth::None, false) => "plaintext",
            (KafkaAuth::None, true) => "ssl",
            (KafkaAuth::Scram { .. }, false) => "sasl_plaintext",
            // MSK serves IAM only over TLS.
            (KafkaAuth::Scram { .. }, true) | (KafkaAuth::MskIam { .. }, _) => "sasl_ssl",
        };
        config.set("security.protocol", protocol);
        match &self.auth {
            KafkaAuth::None => {}
            KafkaAuth::Scram {
                mechanism,
                username,
                password,
            } => {
                config
                    .set("sasl.mechanism", mechanism)
                    .set("sasl.username", username)
                    .set("sasl.password", password);
            }
            KafkaAuth::MskIam { .. } => {
                config.set("sasl.mechanism", "OAUTHBEARER");
            }
        }
        config
    }

    /// The client context: token refresh for MSK IAM, nothing otherwise.
    pub fn context(&self) -> KafkaContext {
        match &self.auth {
            KafkaAuth::MskIam { region } => KafkaContext {
                msk_iam_region: Some(region.clone()),
            },
            _ => KafkaContext { msk_iam_region: None },
        }
    }
}
