//! Crash: the local runtime, as `make dev` runs it (its own process), is killed with SIGKILL
//! while clients are sending, then started again on the same servers, tables, topics and
//! consumer groups. Every acknowledged message is stored exactly once and reaches its recipient:
//! a DELIVERED receipt, or a notification (the recipient's socket died with the runtime).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use relaychat_adapters::dynamo::TableNames;
use relaychat_testkit::{unique, unread};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::storage;

/// The runtime binary, built beside this test (`make test` builds it first).
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("relaychat-local");
    assert!(
        bin.exists(),
        "{} is missing: `cargo build -p relaychat-local` first (make test does)",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Everything that makes two runs of the runtime the same deployment.
struct Deployment {
    env: Vec<(String, String)>,
    http: u16,
    ws: u16,
}

impl Deployment {
    fn new(tables: &TableNames) -> Self {
        let (http, ws) = (free_port(), free_port());
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let mut env: Vec<(String, String)> = [
            ("RELAYCHAT_HTTP_PORT", http.to_string()),
            ("RELAYCHAT_WS_PORT", ws.to_string()),
            ("RELAYCHAT_TABLE_PREFIX", tables.name("")),
            ("RELAYCHAT_GROUP_SUFFIX", format!("-{}", unique("crash"))),
            ("RELAYCHAT_TEMPLATE", format!("{root}/template.yaml")),
            ("RELAYCHAT_WEB_DIR", format!("{root}/web")),
            ("RUST_LOG", "warn".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for var in [
            "KAFKA_TOPIC_CHAT_MESSAGES",
            "KAFKA_TOPIC_MESSAGE_STATUS_EVENTS",
            "KAFKA_TOPIC_TYPING_EVENTS",
            "KAFKA_TOPIC_NOTIFICATIONS",
            "KAFKA_TOPIC_ANALYTICS_EVENTS",
        ] {
            env.push((var.into(), unique(&var.to_lowercase().replace('_', "-"))));
        }
        Self { env, http, ws }
    }

    /// Starts the runtime and waits until its web port answers. The caller kills and reaps it.
    #[allow(clippy::zombie_processes)]
    async fn start(&self) -> Child {
        let mut child = Command::new(binary())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start relaychat-local");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let url = format!("http://127.0.0.1:{}/dev/status", self.http);
            if reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
                return child;
            }
            if Instant::now() >= deadline {
                child.kill().ok();
                child.wait().ok();
                panic!("the runtime did not start");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn token(&self, user: &str) -> String {
        let url = format!("http://127.0.0.1:{}/dev/token?user={user}", self.http);
        let v: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        v["token"].as_str().unwrap().to_owned()
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(d: &Deployment, user: &str) -> Socket {
    let url = format!("ws://127.0.0.1:{}/local?token={}", d.ws, d.token(user).await);
    tokio_tungstenite::connect_async(url).await.expect("connect").0
}

/// Sends and reads the reply of that type; `None` once the socket is gone.
async fn ask(ws: &mut Socket, frame: Value, reply: &str) -> Option<Value> {
    ws.send(Message::Text(frame.to_string().into())).await.ok()?;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).ok()?;
                if v["type"] == reply || v["type"] == "error" {
                    return Some(v);
                }
            }
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_a_sigkill() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let (senders, per_sender) = if crate::long() { (50, 100) } else { (20, 50) };
    let total = senders * per_sender;
    let tables = TableNames::with_prefix(unique("crash") + "-");
    let deployment = Deployment::new(&tables);
    let mut runtime = deployment.start().await;

    // Pairs: a sender, and a recipient who stays connected until the crash.
    let mut pairs = Vec::new();
    let mut recipients = Vec::new();
    for i in 0..senders {
        let (a, b) = (unique(&format!("s{i}")), unique(&format!("r{i}")));
        let mut sender = connect(&deployment, &a).await;
        recipients.push(connect(&deployment, &b).await);
        let created = ask(
            &mut sender,
            json!({"action": "createConversation", "members": [b]}),
            "conversation",
        )
        .await
        .unwrap();
        pairs.push((sender, created["conversationId"].as_str().unwrap().to_owned(), b));
    }

    let acked: Arc<Mutex<HashMap<String, (String, String)>>> = Arc::default();
    let mut tasks = Vec::new();
    for (mut sender, conversation, recipient) in pairs {
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..per_sender {
                let frame =
                    json!({"action": "sendMessage", "conversationId": conversation, "content": format!("m{n}")});
                match ask(&mut sender, frame, "ack").await {
                    Some(v) if v["type"] == "ack" => {
                        let id = v["messageId"].as_str().unwrap().to_owned();
                        acked
                            .lock()
                            .unwrap()
                            .insert(id, (conversation.clone(), recipient.clone()));
                    }
                    Some(_) => {}
                    None => return, // the runtime died
                }
                tokio::time::sleep(Duration::from_millis(110)).await;
            }
        }));
    }
    // SIGKILL once about 40% were acknowledged.
    let started = Instant::now();
    while acked.lock().unwrap().len() < total * 2 / 5 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "sends stalled before the crash"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    runtime.kill().expect("SIGKILL");
    runtime.wait().ok();
    for t in tasks {
        t.await.unwrap();
    }
    drop(recipients);
    let acked = acked.lock().unwrap().clone();

    // Start again: same tables, topics and consumer groups.
    let mut restarted = deployment.start().await;
    let store = storage::store(&std::env::var("DYNAMODB_ENDPOINT").unwrap(), &tables).await;
    let restarted_at = Instant::now();
    let mut missing = Vec::new();
    while restarted_at.elapsed() < Duration::from_secs(180) {
        missing.clear();
        for (id, (conversation, recipient)) in &acked {
            let stored = storage::has_item(
                &store,
                &store.tables().messages(),
                ("conversationId", conversation),
                ("messageId", id),
            )
            .await;
            let delivered = storage::has_item(
                &store,
                &store.tables().receipts(),
                ("messageId", id),
                ("userId", recipient),
            )
            .await;
            let notified = storage::has_item(
                &store,
                &store.tables().notifications(),
                ("userId", recipient),
                ("notificationId", &format!("msg:{id}")),
            )
            .await;
            if !stored || !(delivered || notified) {
                missing.push(format!(
                    "{id}: stored {stored}, delivered {delivered}, notified {notified}"
                ));
            }
        }
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Exactly once: each recipient's unread count equals what was stored in their conversation
    // (a repeat would have counted twice).
    let mut conversations: HashMap<&String, &String> = HashMap::new();
    for (conversation, recipient) in acked.values() {
        conversations.insert(conversation, recipient);
    }
    let mut miscounted = 0;
    for (conversation, recipient) in &conversations {
        let stored = storage::messages_in(&store, std::slice::from_ref(*conversation)).await as i64;
        if unread(&store, recipient, conversation).await != stored {
            miscounted += 1;
        }
    }
    println!(
        "proof: crash sent_up_to={total} acked_before_kill={} lost={} miscounted={miscounted} recovered_in_ms={}",
        acked.len(),
        missing.len(),
        restarted_at.elapsed().as_millis()
    );
    restarted.kill().ok();
    restarted.wait().ok();
    assert!(
        missing.is_empty(),
        "acknowledged but lost: {:#?}",
        &missing[..missing.len().min(10)]
    );
    assert_eq!(miscounted, 0, "unread counts match what was stored");
}
