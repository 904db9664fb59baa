use std::path::PathBuf;
use std::time::Duration;

use relaychat_adapters::kafka::{KafkaDeadLetters, KafkaPublisher};
use relaychat_connections::Outbound;
use relaychat_schema::MskEvent;
use relaychat_schema::Topics;
pub use relaychat_testkit::unread;
use relaychat_testkit::{create_topics, kafka_settings, unique};
use tokio::sync::mpsc::UnboundedReceiver;

pub fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// A sample event from events/, parsed the way lambda_runtime parses it.
pub fn sample(name: &str) -> MskEvent {
    let path = events_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    MskEvent::from_slice(text.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An API Gateway WebSocket sample event from events/.
pub fn ws_sample(name: &str) -> aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest {
    let path = events_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn publisher() -> KafkaPublisher {
    KafkaPublisher::new(&kafka_settings()).expect("producer")
}

/// Dead letters for a fresh consumer name, its topic created.
pub async fn dead_letters(consumer: &str) -> KafkaDeadLetters {
    let dlq = KafkaDeadLetters::new(publisher(), unique(consumer));
    create_topics(&[(dlq.topic(), 1)]).await;
    dlq
}

/// Fresh names for every topic, all created.
pub async fn fresh_topics() -> Topics {
    let topics = Topics::from_lookup(|var| Some(unique(&var.to_lowercase().replace('_', "-"))));
    let specs: Vec<(&str, i32)> = topics.all().map(|(name, spec)| (name, spec.partitions)).collect();
    create_topics(&specs).await;
    topics
}

/// The frames waiting on an emulated connection.
pub fn frames(socket: &mut UnboundedReceiver<Outbound>) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while let Ok(Outbound::Frame(f)) = socket.try_recv() {
        out.push(serde_json::from_slice(&f).expect("frames are JSON"));
    }
    out
}

pub const WAIT: Duration = Duration::from_secs(10);

pub const DIRECT: &str = "01KAXB5ZZZDIRECTALICEBOB00";
pub const GROUP: &str = "01KAXB5ZZZGROUPTEAM0000000";
pub const M1: &str = "01KAXB6S00AAAAAAAAAAAAAAAA";
pub const M2: &str = "01KAXB6S01BBBBBBBBBBBBBBBB";
pub const M3: &str = "01KAXB6S02CCCCCCCCCCCCCCCC";

/// A user online: the connection registered in DynamoDB (as `$connect` does) and open on the
/// `@connections` emulator; returns what is pushed to it.
pub async fn online(
    store: &relaychat_adapters::dynamo::DynamoStore,
    registry: &relaychat_connections::Connections,
    user: &str,
    connection: &str,
) -> UnboundedReceiver<Outbound> {
    let id = relaychat_schema::ConnectionId::parse(connection).expect("connection id");
    let user_id = relaychat_schema::UserId::parse(user).expect("user id");
    store
        .put_connection(&id, &user_id, user)
        .await
        .expect("register connection");
    registry.register(connection, "127.0.0.1", "test")
}
