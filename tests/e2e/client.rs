//! A real WebSocket client (tokio-tungstenite) and a runtime per test.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use relaychat_local::runtime::{self, LocalConfig, Running};
use relaychat_schema::Topics;
use relaychat_testkit::unique;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(30);

/// Request ids, unique in the test process.
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// A runtime on the servers `make test` started, with its own topics, tables and consumer groups.
pub async fn start_runtime() -> (Running, Topics) {
    start_runtime_with(|_| {}).await
}

/// As `start_runtime`, with the configuration adjusted first (another broker, another template).
pub async fn start_runtime_with(adjust: impl FnOnce(&mut LocalConfig)) -> (Running, Topics) {
    let mut config = LocalConfig::from_env();
    config.http_port = 0;
    config.ws_port = 0;
    config.template = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml").into();
    config.web_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../web").into();
    config.topics = Topics::from_lookup(|var| Some(unique(&var.to_lowercase().replace('_', "-"))));
    config.tables = relaychat_adapters::dynamo::TableNames::with_prefix(unique("e2e") + "-");
    config.group_suffix = format!("-{}", unique("g"));
    config.lambda_env_file = None;
    assert!(
        config.infra.kafka_brokers.is_some() && config.infra.dynamodb_endpoint.is_some(),
        "run with `make test`"
    );
    adjust(&mut config);
    let topics = config.topics.clone();
    (runtime::start(config).await.expect("the local runtime starts"), topics)
}

pub async fn token(running: &Running, user: &str, name: &str) -> String {
    let url = format!("http://{}/dev/token?user={user}&name={name}", running.http);
    let body: Value = reqwest::get(url)
        .await
        .expect("token endpoint")
        .json()
        .await
        .expect("token JSON");
    body["token"].as_str().expect("a token").to_owned()
}

pub struct Client {
    pub name: String,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pending: VecDeque<Value>,
}

impl Client {
    pub async fn connect(running: &Running, user: &str, name: &str) -> Client {
        let url = format!("ws://{}/local?token={}", running.ws, token(running, user, name).await);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connects");
        Client {
            name: user.to_owned(),
            ws,
            pending: VecDeque::new(),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("send");
    }

    /// The next frame matching `want`, within the wait; frames that don't match are kept.
    pub async fn expect(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&want) {
            return self.pending.remove(i).expect("present");
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next()).await;
            match next {
                Err(_) => panic!("{}: no {what} within {WAIT:?}; got {:?}", self.name, self.pending),
                Ok(None) => panic!("{}: socket closed waiting for {what}", self.name),
                Ok(Some(Err(e))) => panic!("{}: socket error waiting for {what}: {e}", self.name),
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).expect("frames are JSON");
                    if want(&v) {
                        return v;
                    }
                    self.pending.push_back(v);
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Creates a conversation with these members; its id.
    pub async fn create_conversation(&mut self, members: &[&str]) -> String {
        let created = self
            .ask(
                json!({"action": "createConversation", "members": members}),
                "conversation",
            )
            .await;
        created["conversationId"].as_str().expect("a conversation").to_owned()
    }

    /// How many frames already received (and not yet taken) match.
    pub fn pending_matching(&self, want: impl Fn(&Value) -> bool) -> usize {
        self.pending.iter().filter(|v| want(v)).count()
    }

    /// Asks and waits for the reply of that type.
    /// Sends `frame` with a fresh `requestId` and waits for the frame that answers it (the reply,
    /// or an error about this request): other frames, answers to other requests included, are
    /// kept for later. `reply_type` names what is expected, for the failure message.
    pub async fn ask(&mut self, mut frame: Value, reply_type: &str) -> Value {
        let id = format!("q{}", NEXT_REQUEST.fetch_add(1, Ordering::Relaxed));
        frame["requestId"] = Value::String(id.clone());
        self.send(frame).await;
        self.expect(reply_type, |v| v["requestId"] == id.as_str()).await
    }

    /// The close frame's code, when the server closes the socket.
    pub async fn closed_with(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code.into()),
                Ok(Some(Ok(_))) => continue,
                Ok(None) | Ok(Some(Err(_))) => return None,
                Err(_) => panic!("{}: the socket was not closed", self.name),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
