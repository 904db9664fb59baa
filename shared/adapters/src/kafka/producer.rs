//! The Kafka producer (rdkafka): one per execution environment, idempotent, `acks=all`, and every
//! send awaited until the broker has the record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use relaychat_core::Error;
use relaychat_core::ports::Publisher;
use relaychat_core::trace;
use tracing::{error, warn};

use super::{KafkaContext, KafkaSettings};
use crate::ConfigError;

/// How long one produce may wait for the broker. Well inside the shortest function timeout (the
/// WebSocket functions' 10 s, with their DynamoDB calls besides), so a hung broker answers the
/// client `unavailable` instead of Lambda killing the invocation.
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);

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
    /// Counts the records this publisher got onto the broker (or queued), for whoever wants to
    /// know that something was produced (the local runtime's idle consumers).
    produced: tokio::sync::watch::Sender<u64>,
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
                produced: tokio::sync::watch::Sender::new(0),
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
            Ok(Ok(delivery)) => {
                self.inner.produced.send_modify(|n| *n += 1);
                Ok((delivery.partition, delivery.offset))
            }
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
            Ok(_delivery) => {
                self.inner.produced.send_modify(|n| *n += 1);
                Ok(())
            }
            Err((e, _)) => Err(classify_kafka("queue", e)),
        }
    }

    /// Changes each time this publisher produced (or queued) a record.
    pub fn produced(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.produced.subscribe()
    }

    /// Waits for queued records (shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), Error> {
        self.producer().flush(timeout).map_err(|e| classify_kafka("flush", e))
    }
}

/// The record, with the current span's `traceparent` when it is in one and carries none of its
/// own (a dead letter and a redrive keep the original's): its consumer continues the trace.
fn future_record<'a>(
    topic: &'a str,
    key: Option<&'a [u8]>,
    value: &'a [u8],
    headers: &[(&str, &[u8])],
) -> FutureRecord<'a, [u8], [u8]> {
    let mut owned = OwnedHeaders::new_with_capacity(headers.len() + 1);
    for (name, v) in headers {
        owned = owned.insert(Header {
            key: name,
            value: Some(*v),
        });
    }
    if !headers.iter().any(|(name, _)| *name == trace::TRACEPARENT)
        && let Some(current) = trace::current()
    {
        owned = owned.insert(Header {
            key: trace::TRACEPARENT,
            value: Some(current.to_string().as_bytes()),
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
