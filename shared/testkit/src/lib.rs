//! Helpers for tests against the real services `make test` starts (scripts/with-infra.sh):
//! DynamoDB Local at `DYNAMODB_ENDPOINT` and a Kafka-API broker at `KAFKA_BROKERS`. Every test
//! gets its own tables and topics. Test-only code: it panics with a clear message on failure.

pub mod broker;
pub mod dynamo_faults;
pub mod fcm;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use relaychat_adapters::connections_api::ConnectionsApi;
use relaychat_adapters::dynamo::{DynamoStore, TableNames, tables};
use relaychat_adapters::kafka::{KafkaSettings, headers_of};
use relaychat_connections::{self as connections, Connections};
use relaychat_schema::MskEvent;
use relaychat_schema::kafka::{EventSource, msk_event};
use relaychat_schema::{DecodedRecord, RecordId};

/// A name no other test uses.
pub fn unique(base: &str) -> String {
    format!("{base}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the tests with `make test`"))
}

pub async fn aws_config() -> aws_config::SdkConfig {
    relaychat_adapters::aws::load_config().await
}

/// A DynamoDB store on fresh tables in DynamoDB Local.
pub async fn dynamo_store() -> DynamoStore {
    let config = aws_config().await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .endpoint_url(env("DYNAMODB_ENDPOINT"))
            .build(),
    );
    let names = TableNames::with_prefix(unique("t") + "-");
    tables::create_tables(&client, &names)
        .await
        .expect("create tables in DynamoDB Local");
    DynamoStore::new(client, names)
}

pub fn kafka_settings() -> KafkaSettings {
    KafkaSettings::plaintext(env("KAFKA_BROKERS"))
}

/// Creates topics (Tansu cannot add partitions later, so tests create theirs up front).
pub async fn create_topics(topics: &[(&str, i32)]) {
    create_topics_on(&kafka_settings(), topics).await
}

/// Creates topics on the broker of these settings.
pub async fn create_topics_on(settings: &KafkaSettings, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = settings.client_config().create().expect("admin client");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, p)| NewTopic::new(name, *p, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .expect("create topics");
    for r in results {
        if let Err((topic, code)) = r {
            assert_eq!(
                code,
                rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
                "create topic {topic}"
            );
        }
    }
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct Received {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.value).expect("record value is JSON")
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }
}

/// Reads `topic` from the beginning until `expected` records arrived or `timeout` passed. Once
/// they are there it reads on to the end of every partition as the broker reports it then, so
/// the result is everything written so far: an "exactly N" assertion sees any extra record that
/// was written before it (callers whose producers run on wait for them first). With `expected` 0
/// ("nothing arrives") it reads for the whole `timeout`: an absence is only worth asserting after
/// waiting as long as a record could take to come.
pub fn read_topic(topic: &str, expected: usize, timeout: Duration) -> Vec<Received> {
    let consumer: BaseConsumer = kafka_settings()
        .client_config()
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    let partitions = partitions_of(&consumer, topic);
    let mut assignment = TopicPartitionList::new();
    for p in &partitions {
        assignment
            .add_partition_offset(topic, *p, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut out = Vec::new();
    // Per partition, the next offset to read.
    let mut next: HashMap<i32, i64> = HashMap::new();
    // Per partition, where its end was when the expected records were in.
    let mut ends: Option<HashMap<i32, i64>> = None;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(ends) = &ends
            && ends.iter().all(|(p, end)| next.get(p).copied().unwrap_or(0) >= *end)
        {
            break;
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            next.insert(m.partition(), m.offset() + 1);
            out.push(Received {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().unwrap_or_default().to_vec(),
                headers: headers_of(&m),
            });
        }
        if expected > 0 && out.len() >= expected && ends.is_none() {
            ends = Some(partitions.iter().map(|p| (*p, end_of(&consumer, topic, *p))).collect());
        }
    }
    out
}

/// The partitions of `topic`.
fn partitions_of(consumer: &BaseConsumer, topic: &str) -> Vec<i32> {
    consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .expect("metadata")
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect()
}

/// The end (high watermark) of one partition: the offset its next record will get.
fn end_of(consumer: &BaseConsumer, topic: &str, partition: i32) -> i64 {
    consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(5))
        .expect("watermarks")
        .1
}

/// How many records `topic` holds in all (the sum of its partitions' end offsets).
pub fn records_in(topic: &str) -> i64 {
    let consumer: BaseConsumer = kafka_settings()
        .client_config()
        .set("group.id", unique("counter"))
        .create()
        .expect("consumer");
    partitions_of(&consumer, topic)
        .into_iter()
        .map(|p| end_of(&consumer, topic, p))
        .sum()
}

/// True when consumer group `group` has committed the end of every partition of `topics`: all
/// it was given is handled (a handler's own produces happen before its commit).
pub fn consumed_to_end(group: &str, topics: &[String]) -> bool {
    let consumer: BaseConsumer = kafka_settings()
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut wanted = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for topic in topics {
        for p in partitions_of(&consumer, topic) {
            wanted.add_partition(topic, p);
            ends.insert((topic.clone(), p), end_of(&consumer, topic, p));
        }
    }
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(5))
        .expect("committed offsets");
    committed.elements().iter().all(|e| {
        let end = ends.get(&(e.topic().to_owned(), e.partition())).copied().unwrap_or(0);
        match e.offset() {
            Offset::Offset(o) => o >= end,
            // Nothing committed: only an empty partition is consumed.
            _ => end == 0,
        }
    })
}

/// A record to put in a test event: (partition, offset, key, value).
pub type TestRecord<'a> = (i32, i64, Option<&'a [u8]>, &'a [u8]);

/// An MSK-shaped event (as Lambda delivers it) holding these records of one topic, each with a
/// `traceparent` header, as relaychat's producers write them.
pub fn kafka_event(topic: &str, records: &[TestRecord<'_>]) -> MskEvent {
    let records: Vec<DecodedRecord> = records
        .iter()
        .map(|(partition, offset, key, value)| {
            let id = RecordId {
                topic: topic.to_owned(),
                partition: *partition,
                offset: *offset,
            };
            let mut record = DecodedRecord::new(id, *key, value);
            record.headers = vec![("traceparent".to_owned(), b"00-test".to_vec())];
            record.timestamp = chrono::DateTime::from_timestamp_millis(1_764_064_800_000).unwrap_or_default();
            record
        })
        .collect();
    msk_event(&records, &EventSource::default()).expect("valid Kafka event")
}

/// Records read back from `topic`, as Lambda hands them to a consumer (headers included).
pub fn event_from(topic: &str, records: &[Received]) -> MskEvent {
    let decoded: Vec<DecodedRecord> = records
        .iter()
        .map(|r| {
            let id = RecordId {
                topic: topic.to_owned(),
                partition: r.partition,
                offset: r.offset,
            };
            let mut d = DecodedRecord::new(id, r.key.as_deref(), &r.value);
            d.headers = r.headers.clone();
            d
        })
        .collect();
    msk_event(&decoded, &EventSource::default()).expect("valid Kafka event")
}

/// The `@connections` emulator on a free port, and the real SDK adapter pointed at it.
pub async fn connections_api() -> (Connections, ConnectionsApi) {
    let registry = Connections::default();
    let addr = connections::serve(registry.clone(), 0)
        .await
        .expect("serve @connections");
    let api = ConnectionsApi::new(&aws_config().await, &format!("http://{addr}/test"));
    (registry, api)
}

/// Settings for a broker that is down: a port nothing listens on, and a short delivery timeout.
pub fn unreachable_kafka() -> KafkaSettings {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut settings = KafkaSettings::plaintext(format!("127.0.0.1:{port}"));
    settings.delivery_timeout = Duration::from_millis(1_500);
    settings
}

/// A member's unread count as stored (0 when there is no membership row).
pub async fn unread(store: &DynamoStore, user: &str, conversation: &str) -> i64 {
    use aws_sdk_dynamodb::types::AttributeValue;
    let out = store
        .raw_client()
        .get_item()
        .table_name(store.tables().memberships())
        .key("userId", AttributeValue::S(user.into()))
        .key("conversationId", AttributeValue::S(conversation.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("read membership");
    out.item()
        .and_then(|i| i.get("unread"))
        .and_then(|v| v.as_n().ok())
        .map(|n| n.parse().expect("a number"))
        .unwrap_or(0)
}
