//! The Kafka producer (rdkafka): one per execution environment, idempotent, `acks=all`, and every
//! send awaited until the broker has the record. Also the dead-letter topic writer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use relaychat_core::Error;
use relaychat_core::ports::{DeadLetters, Publisher};
use relaychat_schema::kafka::RawRecord;
use relaychat_schema::topics::dead_letter_topic;

use tracing::{error, warn};

use crate::{ConfigError, optional, required};

/// Headers a dead-lettered record carries besides its own.
pub const DLQ_REASON_HEADER: &str = "x-relaychat-dlq-reason";
pub const DLQ_SOURCE_HEADER: &str = "x-relaychat-dlq-source";
pub const DLQ_CONSUMER_HEADER: &str = "x-relaychat-dlq-consumer";

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
        .map_err(|e| ConfigError::Invalid {
            name: "MSK_CLUSTER_ARN",
            reason: format!("GetBootstrapBrokers failed: {}", e.into_service_error()),
        })?;
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

/// How long one produce may wait for the broker. Well inside the shortest function timeout (the
/// WebSocket functions' 10 s, with their DynamoDB calls besides), so a hung broker answers the
/// client `unavailable` instead of Lambda killing the invocation.
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);

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

/// librdkafka client context. With MSK IAM it answers librdkafka's token refresh with a token
/// signed by the default AWS credential chain (the Lambda role).
#[derive(Debug, Clone, Default)]
pub struct KafkaContext {
    msk_iam_region: Option<String>,
}

impl rdkafka::ClientContext for KafkaContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        let region = self
            .msk_iam_region
            .clone()
            .ok_or("OAUTHBEARER tokens are only made for AWS_MSK_IAM")?;
        // librdkafka calls this from its own thread; the signer is async: run it on a small
        // runtime of its own, on a thread of its own, so it never nests inside another runtime.
        let signed = std::thread::spawn(move || -> Result<(String, i64), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(aws_msk_iam_sasl_signer::generate_auth_token(aws_config::Region::new(
                    region,
                )))
                .map_err(|e| e.to_string())
        })
        .join()
        .map_err(|_| "the MSK IAM signer thread panicked")?;
        let (token, expires_at_ms) = signed?;
        Ok(rdkafka::client::OAuthToken {
            token,
            principal_name: String::new(),
            lifetime_ms: expires_at_ms,
        })
    }
}

/// An idempotent producer whose sends complete when the broker acknowledged them, each within
/// the delivery timeout. After a fatal error (librdkafka's fatal flag, e.g. `PRODUCER_FENCED`
/// when a broker answers an epoch bump that way) the producer is useless for good, so it is
/// rebuilt: the failed send is reported retryable and the next one goes out on a fresh producer.
#[derive(Clone)]
pub struct KafkaPublisher {
    inner: Arc<Inner>,
}

struct Inner {
    settings: KafkaSettings,
    current: RwLock<Arc<OwnedProducer>>,
    rebuilds: AtomicU64,
}

/// A producer destroyed off the async threads: librdkafka's destroy waits for in-flight
/// requests, which with a hung broker takes as long as the broker hangs. Dropped on a tokio
/// worker it would stall every task there (connects included).
struct OwnedProducer(Option<FutureProducer<KafkaContext>>);

impl std::ops::Deref for OwnedProducer {
    type Target = FutureProducer<KafkaContext>;
    fn deref(&self) -> &Self::Target {
        // Some until dropped.
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("a producer is only taken in drop"))
    }
}

impl Drop for OwnedProducer {
    fn drop(&mut self) {
        if let Some(producer) = self.0.take() {
            let _ = std::thread::Builder::new()
                .name("kafka-producer-drop".into())
                .spawn(move || drop(producer));
        }
    }
}

fn build_producer(settings: &KafkaSettings) -> Result<FutureProducer<KafkaContext>, KafkaError> {
    settings
        .client_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        // Low latency on the chat path.
        .set("linger.ms", "1")
        .set("message.timeout.ms", settings.delivery_timeout.as_millis().to_string())
        .set("socket.keepalive.enable", "true")
        .create_with_context(settings.context())
}

/// Is this error one after which the producer can never send again?
fn is_fatal(e: &KafkaError, producer: &OwnedProducer) -> bool {
    producer.client().fatal_error().is_some()
        || matches!(
            e.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::ProducerFenced)
        )
}

impl KafkaPublisher {
    pub fn new(settings: &KafkaSettings) -> Result<Self, ConfigError> {
        let producer = build_producer(settings).map_err(ConfigError::Kafka)?;
        Ok(Self {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                current: RwLock::new(Arc::new(OwnedProducer(Some(producer)))),
                rebuilds: AtomicU64::new(0),
            }),
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::new(&KafkaSettings::from_env()?)
    }

    /// The producer a Lambda function uses: settings discovered as `KafkaSettings::discover` says.
    pub async fn connect(aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        Self::new(&KafkaSettings::discover(aws).await?)
    }

    /// How many times a fatal error made this publisher build a new producer.
    pub fn rebuilds(&self) -> u64 {
        self.inner.rebuilds.load(Ordering::Relaxed)
    }

    fn producer(&self) -> Arc<OwnedProducer> {
        match self.inner.current.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces `broken` with a new producer, unless another send already did.
    fn rebuild(&self, broken: &Arc<OwnedProducer>) {
        let mut current = match self.inner.current.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !Arc::ptr_eq(&current, broken) {
            return;
        }
        match build_producer(&self.inner.settings) {
            Ok(fresh) => {
                // The old one is destroyed on a thread of its own when its last send returns.
                *current = Arc::new(OwnedProducer(Some(fresh)));
                self.inner.rebuilds.fetch_add(1, Ordering::Relaxed);
                warn!(reason = ?broken.client().fatal_error(), "the Kafka producer failed fatally; built a new one");
            }
            Err(e) => error!(error = %e, "the Kafka producer failed fatally and a new one could not be built"),
        }
    }

    /// Sends one record and waits for the broker's acknowledgement: (partition, offset). Never
    /// longer than the delivery timeout (plus a little for the queue).
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<(i32, i64), Error> {
        let producer = self.producer();
        let record = future_record(topic, key, value, headers);
        // The queue-wait is part of the same budget: a full queue means the broker is not keeping up.
        let budget = self.inner.settings.delivery_timeout + Duration::from_millis(500);
        let sent = tokio::time::timeout(budget, producer.send(record, Duration::from_millis(500))).await;
        match sent {
            Ok(Ok(delivery)) => Ok((delivery.partition, delivery.offset)),
            Ok(Err((e, _))) => {
                if is_fatal(&e, &producer) {
                    self.rebuild(&producer);
                    return Err(Error::unavailable("produce", e));
                }
                Err(classify_kafka("produce", e))
            }
            Err(elapsed) => Err(Error::unavailable("produce", elapsed)),
        }
    }

    /// Queues one record without waiting for the broker; librdkafka delivers it in the
    /// background (or drops it after the delivery timeout).
    pub fn enqueue(&self, topic: &str, key: Option<&[u8]>, value: &[u8]) -> Result<(), Error> {
        let producer = self.producer();
        if producer.client().fatal_error().is_some() {
            self.rebuild(&producer);
            return Err(Error::unavailable(
                "queue",
                "the producer was rebuilt after a fatal error",
            ));
        }
        match producer.send_result(future_record(topic, key, value, &[])) {
            Ok(_delivery) => Ok(()),
            Err((e, _)) => Err(classify_kafka("queue", e)),
        }
    }

    /// Waits for queued records (shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), Error> {
        self.producer().flush(timeout).map_err(|e| classify_kafka("flush", e))
    }
}

fn future_record<'a>(
    topic: &'a str,
    key: Option<&'a [u8]>,
    value: &'a [u8],
    headers: &[(&str, &[u8])],
) -> FutureRecord<'a, [u8], [u8]> {
    let mut owned = OwnedHeaders::new_with_capacity(headers.len());
    for (name, v) in headers {
        owned = owned.insert(Header {
            key: name,
            value: Some(*v),
        });
    }
    let mut record = FutureRecord::<[u8], [u8]>::to(topic).payload(value).headers(owned);
    if let Some(key) = key {
        record = record.key(key);
    }
    record
}

/// A consumed message's headers as (name, bytes); a header without a value reads as empty.
pub fn headers_of<M: rdkafka::Message>(message: &M) -> Vec<(String, Vec<u8>)> {
    use rdkafka::message::Headers as _;
    message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default()
}

impl Publisher for KafkaPublisher {
    async fn publish(&self, topic: &str, key: &str, value: Vec<u8>) -> Result<(), Error> {
        self.send(topic, Some(key.as_bytes()), &value, &[]).await.map(|_| ())
    }

    fn publish_best_effort(&self, topic: &str, key: &str, value: Vec<u8>) -> Result<(), Error> {
        self.enqueue(topic, Some(key.as_bytes()), &value)
    }
}

fn classify_kafka(operation: &'static str, e: KafkaError) -> Error {
    let permanent = matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::InvalidTopic
        )
    );
    if permanent {
        Error::rejected(operation, e)
    } else {
        Error::unavailable(operation, e)
    }
}

/// Writes a consumer's failed records to its dead-letter topic (`<consumer>-dlq`): the original key,
/// value and headers, plus the reason, the source `topic-partition@offset` and the consumer.
#[derive(Clone)]
pub struct KafkaDeadLetters {
    publisher: KafkaPublisher,
    consumer: String,
    topic: String,
}

impl KafkaDeadLetters {
    pub fn new(publisher: KafkaPublisher, consumer: impl Into<String>) -> Self {
        let consumer = consumer.into();
        let topic = optional("KAFKA_DLQ_TOPIC").unwrap_or_else(|| dead_letter_topic(&consumer));
        Self::to_topic(publisher, consumer, topic)
    }

    /// Dead letters to a given topic (an event-source mapping's on-failure destination).
    pub fn to_topic(publisher: KafkaPublisher, consumer: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            publisher,
            consumer: consumer.into(),
            topic: topic.into(),
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl DeadLetters for KafkaDeadLetters {
    async fn dead_letter(&self, record: &RawRecord, reason: &str) -> Result<(), Error> {
        let source = record.id.to_string();
        let mut headers: Vec<(&str, &[u8])> = record.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        headers.push((DLQ_REASON_HEADER, reason.as_bytes()));
        headers.push((DLQ_SOURCE_HEADER, source.as_bytes()));
        headers.push((DLQ_CONSUMER_HEADER, self.consumer.as_bytes()));
        self.publisher
            .send(&self.topic, record.key.as_deref(), &record.value, &headers)
            .await
            .map(|_| ())
    }
}
