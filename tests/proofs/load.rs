//! Load: N real WebSocket clients on the local runtime for D seconds (50 for 10 s, each sending a
//! message a second, a tenth of the rate limit; with `RELAYCHAT_PROOFS_LONG=1` 200 for 60 s, each
//! sending every 5 s), in 1:1 conversations and 3-person groups, each message with a unique
//! `clientMessageId`. The promise: no
//! error frame and no socket failure; every message acked, received by each of its recipients and
//! stored exactly once; the process's memory flat (this process hosts the whole runtime). The
//! latencies are printed, not asserted. Before the run, DynamoDB Local's own write capacity is
//! measured (`capacity.rs`), and the runtime's DynamoDB calls are counted at a proxy in front of
//! it: a `load-capacity` line sets the offered rate against capacity ÷ calls a message.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use relaychat_local::runtime::Running;

use relaychat_testkit::dynamo_faults::DynamoFaults;

use crate::capacity::{WRITERS, dynamodb_writes_per_second};
use crate::client::{start_runtime_with, token};
use crate::percentile;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The load's shape: how many clients, for how long, each sending how often.
#[derive(Debug, Clone, Copy)]
struct Shape {
    clients: usize,
    seconds: u64,
    every: Duration,
}

impl Shape {
    /// 50 clients each sending once a second (a tenth of `sendMessage`'s budget) for 10 s; the
    /// long variant 200 clients each sending every 5 s for 60 s. `RELAYCHAT_LOAD_CLIENTS`,
    /// `RELAYCHAT_LOAD_SECONDS` and `RELAYCHAT_LOAD_EVERY_MS` change either.
    fn chosen() -> Self {
        let default = if crate::long() {
            Shape {
                clients: 200,
                seconds: 60,
                every: Duration::from_secs(5),
            }
        } else {
            Shape {
                clients: 50,
                seconds: 10,
                every: Duration::from_secs(1),
            }
        };
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        Shape {
            clients: var("RELAYCHAT_LOAD_CLIENTS").map_or(default.clients, |c| c as usize),
            seconds: var("RELAYCHAT_LOAD_SECONDS").unwrap_or(default.seconds),
            every: var("RELAYCHAT_LOAD_EVERY_MS").map_or(default.every, Duration::from_millis),
        }
    }

    fn sends_each(&self) -> usize {
        (Duration::from_secs(self.seconds).as_millis() / self.every.as_millis().max(1)) as usize
    }

    fn offered_per_second(&self) -> f64 {
        self.clients as f64 / self.every.as_secs_f64()
    }
}
/// Conversation sizes, in turn: a 1:1 conversation, then a 3-person group.
const GROUP_SIZES: [usize; 2] = [2, 3];
/// How long after the last send every ack and every delivery may still take.
const DRAIN: Duration = Duration::from_secs(20);
/// How long persistence may trail the deliveries.
const STORE_WAIT: Duration = Duration::from_secs(20);
/// Connecting and creating the conversations.
const SETUP_WAIT: Duration = Duration::from_secs(30);
/// How long DynamoDB Local's capacity is measured for, before the load.
const CAPACITY_SPELL: Duration = Duration::from_secs(3);
/// Memory may grow this much from the middle third of the run to the last.
const MAX_GROWTH_RATIO: f64 = 0.5;
const MAX_GROWTH_MB: f64 = 150.0;
/// Not yet known: the client still has sends waiting for their answer.
const UNKNOWN: usize = usize::MAX;

fn user(index: usize) -> String {
    format!("load-{index}")
}

/// The client that sent a `clientMessageId` (`load-<index>-<seq>`).
fn sender_of(client_message_id: &str) -> Option<usize> {
    client_message_id.strip_prefix("load-")?.split('-').next()?.parse().ok()
}

/// Each client's acked count once all its sends are answered, for its partners to wait on.
struct Board {
    acked: Vec<AtomicUsize>,
}

struct Plan {
    index: usize,
    conversation: String,
    partners: Vec<usize>,
    first_send: Instant,
    every: Duration,
    sends: usize,
    deadline: Instant,
}

struct Received {
    client_message_id: String,
    message_id: String,
    sender_id: String,
    conversation_id: String,
    at: Instant,
}

/// What one client saw.
#[derive(Default)]
struct Tally {
    sent: HashMap<String, Instant>,
    /// `clientMessageId` → (`messageId`, when the ack came).
    acks: HashMap<String, (String, Instant)>,
    /// Sends answered with an error frame.
    refused: HashSet<String>,
    received: Vec<Received>,
    seen: HashSet<String>,
    by_sender: HashMap<usize, usize>,
    duplicates: usize,
    statuses: usize,
    /// Co-members coming online (a presence frame each, told once).
    presence: usize,
    /// New conversations announced to their members.
    announced: usize,
    errors: Vec<String>,
}

impl Tally {
    fn answered(&self) -> usize {
        self.acks.len() + self.refused.len()
    }

    fn frame(&mut self, me: &str, conversation: &str, v: Value) {
        let now = Instant::now();
        match v["type"].as_str() {
            Some("ack") => {
                let cmid = v["clientMessageId"].as_str().unwrap_or_default().to_owned();
                let message_id = v["messageId"].as_str().unwrap_or_default().to_owned();
                if !self.sent.contains_key(&cmid) {
                    self.errors.push(format!("{me}: ack for nothing sent: {v}"));
                } else if v["status"] != "SENT" || v["conversationId"] != conversation || message_id.is_empty() {
                    self.errors.push(format!("{me}: malformed ack: {v}"));
                } else if self.acks.insert(cmid, (message_id, now)).is_some() {
                    self.errors.push(format!("{me}: second ack: {v}"));
                }
            }
            Some("message") => {
                let message_id = v["messageId"].as_str().unwrap_or_default().to_owned();
                if !self.seen.insert(message_id.clone()) {
                    // At-least-once delivery: clients drop a messageId they already have.
                    self.duplicates += 1;
                    return;
                }
                let content = v["content"].as_str().unwrap_or_default();
                let cmid = content.split(' ').next().unwrap_or_default().to_owned();
                if let Some(sender) = sender_of(&cmid) {
                    *self.by_sender.entry(sender).or_default() += 1;
                }
                self.received.push(Received {
                    client_message_id: cmid,
                    message_id,
                    sender_id: v["senderId"].as_str().unwrap_or_default().to_owned(),
                    conversation_id: v["conversationId"].as_str().unwrap_or_default().to_owned(),
                    at: now,
                });
            }
            Some("status") => self.statuses += 1,
            Some("presence") => self.presence += 1,
            // Groups being set up, announced to their members.
            Some("conversation") if v.get("change").is_some() => self.announced += 1,
            Some("error") => {
                if let Some(cmid) = v["clientMessageId"].as_str()
                    && self.sent.contains_key(cmid)
                {
                    self.refused.insert(cmid.to_owned());
                }
                self.errors.push(format!("{me}: error frame: {v}"));
            }
            _ => self.errors.push(format!("{me}: unexpected frame: {v}")),
        }
    }
}

/// One client: sends on its schedule, takes every frame, and ends when all its sends are answered
/// and every partner's acked messages have arrived (or at the deadline). Gives its socket back for
/// the history check, unless it failed.
async fn run_client(mut ws: Ws, plan: Plan, board: Arc<Board>) -> (Option<Ws>, Tally) {
    let me = user(plan.index);
    let mut tally = Tally::default();
    let mut pace = tokio::time::interval_at(plan.first_send, plan.every);
    pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Partners' counts are published on the board: look again now and then while draining.
    let mut look = tokio::time::interval(Duration::from_millis(50));
    let mut seq = 0;
    let mut published = false;
    loop {
        if !published && seq == plan.sends && tally.answered() == seq {
            board.acked[plan.index].store(tally.acks.len(), Ordering::SeqCst);
            published = true;
        }
        let partners_done = plan.partners.iter().all(|&p| {
            let acked = board.acked[p].load(Ordering::SeqCst);
            acked != UNKNOWN && tally.by_sender.get(&p).copied().unwrap_or(0) >= acked
        });
        if published && partners_done {
            return (Some(ws), tally);
        }
        tokio::select! {
            _ = pace.tick(), if seq < plan.sends => {
                let cmid = format!("{me}-{seq}");
                let frame = json!({"action": "sendMessage", "conversationId": plan.conversation,
                    "content": format!("{cmid} hello number {seq} from {me}"), "clientMessageId": cmid});
                tally.sent.insert(cmid, Instant::now());
                seq += 1;
                if let Err(e) = ws.send(Message::Text(frame.to_string().into())).await {
                    tally.errors.push(format!("{me}: send failed: {e}"));
                    return (None, tally);
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<Value>(&t) {
                    Ok(v) => tally.frame(&me, &plan.conversation, v),
                    Err(_) => tally.errors.push(format!("{me}: a frame that is not JSON: {t}")),
                },
                Some(Ok(Message::Close(c))) => {
                    tally.errors.push(format!("{me}: closed by the server: {c:?}"));
                    return (None, tally);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tally.errors.push(format!("{me}: socket error: {e}"));
                    return (None, tally);
                }
                None => {
                    tally.errors.push(format!("{me}: socket ended"));
                    return (None, tally);
                }
            },
            _ = look.tick(), if seq == plan.sends => {}
            _ = tokio::time::sleep_until(plan.deadline) => {
                let unanswered = seq - tally.answered();
                if unanswered > 0 {
                    tally.errors.push(format!("{me}: {unanswered} sends without an answer"));
                }
                for &p in &plan.partners {
                    let got = tally.by_sender.get(&p).copied().unwrap_or(0);
                    let acked = board.acked[p].load(Ordering::SeqCst);
                    if acked == UNKNOWN || got < acked {
                        let acked = if acked == UNKNOWN { "unknown".into() } else { acked.to_string() };
                        tally.errors.push(format!("{me}: {got} of {}'s messages arrived (acked: {acked})", user(p)));
                    }
                }
                return (Some(ws), tally);
            }
        }
    }
}

async fn connect(running: &Running, name: &str) -> Ws {
    let url = format!("ws://{}/local?token={}", running.ws, token(running, name, name).await);
    let (ws, _) = tokio::time::timeout(SETUP_WAIT, tokio_tungstenite::connect_async(url))
        .await
        .unwrap_or_else(|_| panic!("{name}: no connection within {SETUP_WAIT:?}"))
        .unwrap_or_else(|e| panic!("{name}: websocket connects: {e}"));
    ws
}

/// Conversations of 2 and 3 members in turn; a lone last client joins the conversation before it.
fn groups_of(clients: usize) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut next = 0;
    while next < clients {
        let size = GROUP_SIZES[groups.len() % GROUP_SIZES.len()].min(clients - next);
        match groups.last_mut() {
            Some(last) if size < 2 => last.push(next),
            _ => groups.push((next..next + size).collect()),
        }
        next += size;
    }
    groups
}

/// Everyone connected (a few at a time, as a crowd would arrive), and each group's conversation
/// created by its first member: the sockets, and the conversation of each group.
async fn setup(running: &Running, groups: &[Vec<usize>]) -> (Vec<Option<Ws>>, Vec<String>) {
    let clients = groups.iter().map(Vec::len).sum();
    let mut sockets: Vec<Option<Ws>> = (0..clients).map(|_| None).collect();
    let connected: Vec<(usize, Ws)> = futures::stream::iter(0..clients)
        .map(|i| async move { (i, connect(running, &user(i)).await) })
        .buffer_unordered(16)
        .collect()
        .await;
    for (i, ws) in connected {
        sockets[i] = Some(ws);
    }
    let until = Instant::now() + SETUP_WAIT;
    let mut creators: Vec<(usize, Ws)> = groups
        .iter()
        .map(|g| (g[0], sockets[g[0]].take().expect("connected")))
        .collect();
    let conversations = futures::future::join_all(creators.iter_mut().zip(groups).map(
        |((creator, ws), group)| async move {
            let others: Vec<String> = group.iter().skip(1).map(|&m| user(m)).collect();
            let frame =
                json!({"action": "createConversation", "members": others, "title": format!("load {}", user(*creator))});
            let created = ask(ws, frame, "conversation", until)
                .await
                .unwrap_or_else(|e| panic!("{}: createConversation: {e}", user(*creator)));
            created["conversationId"].as_str().expect("a conversationId").to_owned()
        },
    ))
    .await;
    for (creator, ws) in creators {
        sockets[creator] = Some(ws);
    }
    (sockets, conversations)
}

/// Two clients outside the measured ones exchange one message: once it arrives, the pipeline
/// (broker, deliver-message's consumer group) is up. How long that took from here.
async fn warm_up(running: &Running) -> Duration {
    let started = Instant::now();
    let until = started + SETUP_WAIT;
    let (mut a, mut b) = (connect(running, "warmup-a").await, connect(running, "warmup-b").await);
    let created = ask(
        &mut a,
        json!({"action": "createConversation", "members": ["warmup-b"]}),
        "conversation",
        until,
    )
    .await
    .expect("warm-up conversation");
    let send = json!({"action": "sendMessage", "conversationId": created["conversationId"], "content": "warm-up",
        "clientMessageId": "warmup"});
    ask(&mut a, send, "ack", until).await.expect("warm-up ack");
    frame_of(&mut b, "message", until)
        .await
        .expect("the warm-up message arrives");
    let took = started.elapsed();
    for mut ws in [a, b] {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    }
    took
}

/// Sends `frame` and returns the reply of type `want` (as `frame_of`).
async fn ask(ws: &mut Ws, frame: Value, want: &str, until: Instant) -> Result<Value, String> {
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .map_err(|e| format!("send: {e}"))?;
    frame_of(ws, want, until).await
}

/// The next frame of type `want`; late `message`, `status` and `ack` frames before it, and
/// frames pushed on the server's own account, are skipped. An error frame, a broken socket or the deadline is an `Err`.
async fn frame_of(ws: &mut Ws, want: &str, until: Instant) -> Result<Value, String> {
    loop {
        match tokio::time::timeout_at(until, ws.next()).await {
            Err(_) => return Err(format!("no {want} reply in time")),
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).map_err(|_| format!("not JSON: {t}"))?;
                // Pushed, answering nothing: a co-member's presence, another's new conversation.
                let pushed = v["type"] == "presence" || v.get("change").is_some();
                match v["type"].as_str() {
                    Some(t) if t == want && !pushed => return Ok(v),
                    // Late: deliveries, receipts, answers to sends given up on.
                    Some("message" | "status" | "ack") => {}
                    _ if pushed => {}
                    _ => return Err(format!("{v} instead of {want}")),
                }
            }
            Ok(Some(Ok(Message::Close(c)))) => return Err(format!("closed: {c:?}")),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(format!("socket error: {e}")),
            Ok(None) => return Err("socket ended".into()),
        }
    }
}

/// Every message id in a conversation's history, paging until there is no older page.
async fn history(ws: &mut Ws, conversation: &str, until: Instant) -> Result<Vec<String>, String> {
    let mut ids = Vec::new();
    let mut before = Value::Null;
    loop {
        let mut frame = json!({"action": "history", "conversationId": conversation, "limit": 100});
        if !before.is_null() {
            frame["before"] = before.clone();
        }
        let page = ask(ws, frame, "history", until).await?;
        let messages = page["messages"].as_array().ok_or(format!("no messages: {page}"))?;
        ids.extend(
            messages
                .iter()
                .map(|m| m["messageId"].as_str().unwrap_or_default().to_owned()),
        );
        before = page["nextBefore"].clone();
        if before.is_null() || messages.is_empty() {
            return Ok(ids);
        }
    }
}

/// What history shows for one conversation once it holds as many messages as were acked (or at the
/// deadline): (stored ids, error).
async fn stored(ws: Option<&mut Ws>, conversation: &str, expected: usize) -> (Vec<String>, Option<String>) {
    let Some(ws) = ws else {
        return (
            Vec::new(),
            Some(format!("{conversation}: no live socket to read history with")),
        );
    };
    let until = Instant::now() + STORE_WAIT;
    loop {
        match history(ws, conversation, until).await {
            Ok(ids) if ids.len() >= expected || Instant::now() >= until => return (ids, None),
            Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => return (Vec::new(), Some(format!("{conversation}: history: {e}"))),
        }
    }
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb / 1024.0
}

fn average(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_chat_steadily_with_every_message_acked_delivered_and_stored_once_in_flat_memory() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let wall = std::time::Instant::now();
    let shape = Shape::chosen();
    let (clients, seconds) = (shape.clients, shape.seconds);
    let sends_each = shape.sends_each();
    let run_for = shape.every * sends_each as u32;
    // DynamoDB Local's capacity on this machine now. With RELAYCHAT_LOAD_COUNT_CALLS=1 the
    // runtime's calls are also counted at a proxy in front of it (which costs the saturated
    // machine enough CPU to change the latencies, so not by default).
    let upstream = std::env::var("DYNAMODB_ENDPOINT").expect("run with make test");
    let writes_per_s = dynamodb_writes_per_second(&upstream, CAPACITY_SPELL).await;
    let proxy = match std::env::var("RELAYCHAT_LOAD_COUNT_CALLS") {
        Ok(v) if v == "1" => Some(DynamoFaults::start(&upstream).await),
        _ => None,
    };
    let endpoint = proxy.as_ref().map(|p| p.endpoint.clone());
    let (running, _topics) = start_runtime_with(|c| {
        if endpoint.is_some() {
            c.infra.dynamodb_endpoint = endpoint;
        }
    })
    .await;
    let runtime_up = wall.elapsed();

    // While the event-source mappings join their consumer groups (seconds on this broker): connect
    // everyone and create the conversations; the run starts once a message goes all the way through.
    let groups = groups_of(clients);
    let (warmed_in, (mut sockets, conversations)) = tokio::join!(warm_up(&running), setup(&running, &groups));
    let mut group_of = vec![0; clients];
    for (g, members) in groups.iter().enumerate() {
        for &m in members {
            group_of[m] = g;
        }
    }
    let set_up = wall.elapsed();

    // The run: sends spread evenly over each second; memory sampled every second.
    let board = Arc::new(Board {
        acked: (0..clients).map(|_| AtomicUsize::new(UNKNOWN)).collect(),
    });
    let start = Instant::now() + Duration::from_millis(200);
    let deadline = start + run_for + DRAIN;
    if let Some(proxy) = &proxy {
        proxy.reset_counts();
    }
    let (stop_sampling, mut sampling_stopped) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut every = tokio::time::interval_at(start, Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = every.tick() => samples.push(rss_mb()),
                _ = sampling_stopped.changed() => return samples,
            }
        }
    });
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let g = group_of[i];
            let plan = Plan {
                index: i,
                conversation: conversations[g].clone(),
                partners: groups[g].iter().copied().filter(|&m| m != i).collect(),
                first_send: start + shape.every * i as u32 / clients as u32,
                every: shape.every,
                sends: sends_each,
                deadline,
            };
            let ws = sockets[i].take().expect("connected");
            tokio::spawn(run_client(ws, plan, board.clone()))
        })
        .collect();
    let mut tallies = Vec::with_capacity(clients);
    for (i, t) in futures::future::join_all(tasks).await.into_iter().enumerate() {
        let (ws, tally) = t.expect("a client task ends without panicking");
        sockets[i] = ws;
        tallies.push(tally);
    }
    let _ = stop_sampling.send(true);
    let samples = sampler.await.expect("the sampler ends");
    let run = wall.elapsed();
    let calls: Option<usize> = proxy.as_ref().map(|p| p.calls_by_operation().values().sum());

    // Every acked message, by clientMessageId: (sender, messageId, when it was sent).
    let mut errors: Vec<String> = tallies.iter().flat_map(|t| t.errors.iter().cloned()).collect();
    let mut acked: HashMap<&str, (usize, &str, Instant)> = HashMap::new();
    let mut ack_latencies = Vec::new();
    for (i, t) in tallies.iter().enumerate() {
        for (cmid, (message_id, at)) in &t.acks {
            let sent = t.sent[cmid];
            ack_latencies.push(*at - sent);
            acked.insert(cmid.as_str(), (i, message_id.as_str(), sent));
        }
    }
    // Each acked message at each recipient, once, as sent.
    let mut deliver_latencies = Vec::new();
    // Delivery latencies by the third of the run the message was sent in: a growing backlog shows.
    let mut deliver_by_third: [Vec<Duration>; 3] = Default::default();
    let mut lost_deliveries = Vec::new();
    for (r, t) in tallies.iter().enumerate() {
        let mut got: HashMap<&str, &Received> = HashMap::new();
        for m in &t.received {
            match acked.get(m.client_message_id.as_str()) {
                Some(&(sender, message_id, sent)) => {
                    let as_sent = m.message_id == message_id
                        && m.sender_id == user(sender)
                        && m.conversation_id == conversations[group_of[sender]]
                        && group_of[sender] == group_of[r];
                    if !as_sent {
                        errors.push(format!(
                            "{}: {} arrived as {} from {} in {}, not as acked",
                            user(r),
                            m.client_message_id,
                            m.message_id,
                            m.sender_id,
                            m.conversation_id
                        ));
                    }
                    deliver_latencies.push(m.at - sent);
                    let third = (3 * (sent - start).as_millis() / run_for.as_millis().max(1)) as usize;
                    deliver_by_third[third.min(2)].push(m.at - sent);
                    got.insert(m.client_message_id.as_str(), m);
                }
                None => errors.push(format!(
                    "{}: received {} ({}), which was never acked",
                    user(r),
                    m.client_message_id,
                    m.message_id
                )),
            }
        }
        for (cmid, &(sender, _, _)) in &acked {
            if sender != r && group_of[sender] == group_of[r] && !got.contains_key(cmid) {
                lost_deliveries.push(format!("{cmid} never reached {}", user(r)));
            }
        }
    }

    // Each acked message stored exactly once, read back through history.
    let expected: Vec<HashSet<&str>> = groups
        .iter()
        .map(|members| {
            acked
                .values()
                .filter(|(sender, _, _)| members.contains(sender))
                .map(|(_, id, _)| *id)
                .collect()
        })
        .collect();
    let mut readers: Vec<(usize, Option<Ws>)> = groups
        .iter()
        .map(|members| {
            let reader = members
                .iter()
                .copied()
                .find(|&m| sockets[m].is_some())
                .unwrap_or(members[0]);
            (reader, sockets[reader].take())
        })
        .collect();
    let histories = futures::future::join_all(
        readers
            .iter_mut()
            .zip(&conversations)
            .zip(&expected)
            .map(|(((_, ws), conversation), expected)| stored(ws.as_mut(), conversation, expected.len())),
    )
    .await;
    let (mut stored_once, mut lost_stored) = (0, Vec::new());
    for ((ids, error), (expected, conversation)) in histories.into_iter().zip(expected.iter().zip(&conversations)) {
        errors.extend(error);
        let unique: HashSet<&str> = ids.iter().map(String::as_str).collect();
        if unique.len() != ids.len() {
            errors.push(format!(
                "{conversation}: {} messages stored more than once",
                ids.len() - unique.len()
            ));
        }
        for extra in unique.difference(expected) {
            errors.push(format!("{conversation}: {extra} stored but never acked"));
        }
        stored_once += unique.intersection(expected).count();
        lost_stored.extend(
            expected
                .difference(&unique)
                .map(|id| format!("{conversation}: {id} acked but not stored")),
        );
    }
    for (reader, ws) in readers {
        sockets[reader] = ws;
    }
    for ws in sockets.into_iter().flatten() {
        let mut ws = ws;
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    }
    let checked = wall.elapsed();
    running.stop().await;

    // Figures.
    ack_latencies.sort();
    deliver_latencies.sort();
    let deliver_p50_by_third: Vec<String> = deliver_by_third
        .iter_mut()
        .map(|l| {
            l.sort();
            format!("{:.1}", percentile(l, 50.0))
        })
        .collect();
    let sent: usize = tallies.iter().map(|t| t.sent.len()).sum();
    let duplicates: usize = tallies.iter().map(|t| t.duplicates).sum();
    let statuses: usize = tallies.iter().map(|t| t.statuses).sum();
    let presence: usize = tallies.iter().map(|t| t.presence).sum();
    let announced: usize = tallies.iter().map(|t| t.announced).sum();
    let lost = lost_deliveries.len() + lost_stored.len();
    let n = samples.len();
    let (middle, last) = (&samples[n / 3..2 * n / 3], &samples[2 * n / 3..]);
    let (middle_mb, last_mb) = (average(middle), average(last));
    let growth_mb = last_mb - middle_mb;
    let (rss_start, rss_mid, rss_end) = (
        samples.first().copied().unwrap_or_default(),
        samples.get(n / 2).copied().unwrap_or_default(),
        samples.last().copied().unwrap_or_default(),
    );
    println!(
        "load: rss_mb samples={n} start={rss_start:.1} mid={rss_mid:.1} end={rss_end:.1} \
         middle_third_avg={middle_mb:.1} last_third_avg={last_mb:.1} growth_mb={growth_mb:.1} all={:?}",
        samples.iter().map(|s| (s * 10.0).round() / 10.0).collect::<Vec<_>>()
    );
    println!(
        "load: groups={} duplicate_deliveries={duplicates} status_frames={statuses} presence_frames={presence} conversation_frames={announced} ack_max_ms={:.1} \
         deliver_max_ms={:.1} deliver_p50_ms_by_third={} warm_up_ms={} wall_s: runtime_up={:.1} set_up={:.1} run={:.1} checked={:.1} stopped={:.1}",
        groups.len(),
        percentile(&ack_latencies, 100.0),
        percentile(&deliver_latencies, 100.0),
        deliver_p50_by_third.join("/"),
        warmed_in.as_millis(),
        runtime_up.as_secs_f64(),
        set_up.as_secs_f64(),
        run.as_secs_f64(),
        checked.as_secs_f64(),
        wall.elapsed().as_secs_f64()
    );
    println!(
        "proof: load clients={clients} seconds={seconds} every_ms={} offered_per_s={:.1} sent={sent} acked={} delivered={} stored={stored_once} \
         errors={} lost={lost} ack_p50_ms={:.1} ack_p99_ms={:.1} deliver_p50_ms={:.1} deliver_p99_ms={:.1} \
         rss_mb_start={rss_start:.1} rss_mb_end={rss_end:.1}",
        shape.every.as_millis(),
        shape.offered_per_second(),
        acked.len(),
        deliver_latencies.len(),
        errors.len(),
        percentile(&ack_latencies, 50.0),
        percentile(&ack_latencies, 99.0),
        percentile(&deliver_latencies, 50.0),
        percentile(&deliver_latencies, 99.0),
    );

    let offered = shape.offered_per_second();
    match calls {
        Some(calls) => {
            let calls_per_message = calls as f64 / sent.max(1) as f64;
            let capacity_per_s = writes_per_s / calls_per_message.max(f64::EPSILON);
            println!(
                "proof: load-capacity dynamodb_local_writes_per_s={writes_per_s:.0} (writers={WRITERS}) \
                 dynamodb_calls_per_message={calls_per_message:.2} capacity_messages_per_s={capacity_per_s:.1} \
                 offered_per_s={offered:.1} offered_of_capacity={:.2} (counted through a proxy: latencies above are worse for it)",
                offered / capacity_per_s.max(f64::EPSILON),
            );
        }
        None => println!(
            "proof: load-capacity dynamodb_local_writes_per_s={writes_per_s:.0} (writers={WRITERS}) offered_per_s={offered:.1} \
             (RELAYCHAT_LOAD_COUNT_CALLS=1 counts the calls a message in this mix)"
        ),
    }

    // Errors by kind (numbers as N, frames by their code), to read a failure at a glance.
    let mut kinds: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for e in &errors {
        let text = e.split_once(": ").map_or(e.as_str(), |(_, rest)| rest);
        let (head, frame) = text.split_once('{').unwrap_or((text, ""));
        let mut kind = String::new();
        for c in head.chars() {
            match c {
                '0'..='9' if kind.ends_with('N') => {}
                '0'..='9' => kind.push('N'),
                c => kind.push(c),
            }
        }
        if let Some(code) = frame.split("\"code\":\"").nth(1).and_then(|c| c.split('"').next()) {
            kind.push_str(code);
        }
        *kinds.entry(kind).or_default() += 1;
    }
    for (kind, n) in &kinds {
        println!("load: error x{n}: {kind}");
    }
    assert!(
        errors.is_empty(),
        "{} errors, the first: {:#?}",
        errors.len(),
        &errors[..errors.len().min(10)]
    );
    assert_eq!(sent, clients * sends_each, "every client sent on its schedule");
    assert_eq!(acked.len(), sent, "every message acked");
    assert!(
        lost_deliveries.is_empty(),
        "{} deliveries lost, the first: {:#?}",
        lost_deliveries.len(),
        &lost_deliveries[..lost_deliveries.len().min(10)]
    );
    assert!(
        lost_stored.is_empty(),
        "{} acked messages not stored, the first: {:#?}",
        lost_stored.len(),
        &lost_stored[..lost_stored.len().min(10)]
    );
    assert_eq!(stored_once, acked.len(), "every acked message stored once");
    assert!(n >= 3, "memory sampled every second: {samples:?}");
    assert!(
        growth_mb < MAX_GROWTH_MB && growth_mb < MAX_GROWTH_RATIO * middle_mb,
        "memory grew from {middle_mb:.1} MB (middle third) to {last_mb:.1} MB (last third): {samples:?}"
    );
}
