//! A fault-injecting proxy in front of DynamoDB Local: every call is forwarded unchanged unless
//! the plan says to answer it with a fault instead, exactly as DynamoDB words that fault on the
//! wire (status, `__type`, `CancellationReasons`). The SDK and the adapter above it cannot tell
//! the difference, so retries, classification and idempotency are tested end to end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use relaychat_adapters::dynamo::{DynamoStore, TableNames};

/// A fault as DynamoDB answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 400 `ProvisionedThroughputExceededException` (the SDK retries it, then gives up).
    Throttle,
    /// 500 `InternalServerError`.
    ServerError,
    /// 400 `TransactionCanceledException` whose last item was throttled (`ThrottlingError`) and
    /// the others not evaluated (`None`); other operations get `Throttle`.
    TransactionThrottled,
    /// As above with `TransactionConflict`.
    TransactionConflict,
    /// The call is carried out, then its answer lost (500): the SDK retries a call that already
    /// took effect, as after a response lost to a timeout.
    AppliedThenLost,
}

#[derive(Debug, Clone)]
struct Rule {
    /// The operation (`X-Amz-Target` suffix, e.g. `TransactWriteItems`), or any.
    operation: Option<String>,
    fault: Fault,
    /// How many more calls to fault; `usize::MAX` for "until cleared".
    remaining: usize,
    /// Fault one call in this many (1: every call).
    every: usize,
    seen: usize,
}

#[derive(Default)]
struct Plan {
    rules: Vec<Rule>,
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    plan: Mutex<Plan>,
    calls: AtomicUsize,
    injected: AtomicUsize,
    /// Calls by operation (`X-Amz-Target` suffix).
    by_operation: Mutex<BTreeMap<String, usize>>,
    /// Items the calls asked to write (a transaction's each, a batch's each, else one), and the
    /// bytes of every request: what the calls cost, beside how many there were.
    items_written: AtomicUsize,
    request_bytes: AtomicUsize,
}

/// The running proxy.
#[derive(Clone)]
pub struct DynamoFaults {
    pub endpoint: String,
    shared: Arc<Shared>,
}

impl DynamoFaults {
    /// A proxy to `upstream` (DynamoDB Local's endpoint) on a free port.
    pub async fn start(upstream: &str) -> Self {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
            plan: Mutex::new(Plan::default()),
            calls: AtomicUsize::new(0),
            injected: AtomicUsize::new(0),
            by_operation: Mutex::new(BTreeMap::new()),
            items_written: AtomicUsize::new(0),
            request_bytes: AtomicUsize::new(0),
        });
        let app = axum::Router::new().fallback(forward).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            endpoint: format!("http://{addr}"),
            shared,
        }
    }

    /// Answers the next `times` calls of `operation` (any when `None`) with `fault`.
    pub fn fail_next(&self, operation: Option<&str>, fault: Fault, times: usize) {
        self.add(operation, fault, times, 1);
    }

    /// Answers one call in `every` of `operation` with `fault` until `clear`.
    pub fn fail_every(&self, operation: Option<&str>, fault: Fault, every: usize) {
        self.add(operation, fault, usize::MAX, every.max(1));
    }

    fn add(&self, operation: Option<&str>, fault: Fault, remaining: usize, every: usize) {
        self.shared.plan.lock().expect("plan").rules.push(Rule {
            operation: operation.map(str::to_owned),
            fault,
            remaining,
            every,
            seen: 0,
        });
    }

    pub fn clear(&self) {
        self.shared.plan.lock().expect("plan").rules.clear();
    }

    /// Calls that reached the proxy, and faults it answered with.
    pub fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }
    /// Calls that reached the proxy, by operation, since the last `reset_counts`.
    pub fn calls_by_operation(&self) -> BTreeMap<String, usize> {
        self.shared.by_operation.lock().expect("counts").clone()
    }
    pub fn reset_counts(&self) {
        self.shared.by_operation.lock().expect("counts").clear();
        self.shared.items_written.store(0, Ordering::SeqCst);
        self.shared.request_bytes.store(0, Ordering::SeqCst);
    }
    /// Items written since the last `reset_counts` (as the requests asked: a cancelled
    /// transaction's count too).
    pub fn items_written(&self) -> usize {
        self.shared.items_written.load(Ordering::SeqCst)
    }
    /// Request bytes since the last `reset_counts`.
    pub fn request_bytes(&self) -> usize {
        self.shared.request_bytes.load(Ordering::SeqCst)
    }

    pub fn injected(&self) -> usize {
        self.shared.injected.load(Ordering::SeqCst)
    }

    /// A store on `tables` whose every call goes through this proxy.
    pub async fn store(&self, tables: TableNames) -> DynamoStore {
        let config = crate::aws_config().await;
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&config)
                .endpoint_url(&self.endpoint)
                .build(),
        );
        DynamoStore::new(client, tables)
    }
}

fn fault_for(shared: &Shared, operation: &str) -> Option<Fault> {
    let mut plan = shared.plan.lock().expect("plan");
    for rule in plan.rules.iter_mut() {
        if rule.remaining == 0 || rule.operation.as_deref().is_some_and(|o| o != operation) {
            continue;
        }
        rule.seen += 1;
        if rule.seen % rule.every != 0 {
            continue;
        }
        if rule.remaining != usize::MAX {
            rule.remaining -= 1;
        }
        return Some(rule.fault);
    }
    None
}

fn error_response(status: StatusCode, body: serde_json::Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/x-amz-json-1.0"));
    r
}

fn fault_response(fault: Fault, operation: &str, request: &[u8]) -> Response {
    let ty = |name: &str| format!("com.amazonaws.dynamodb.v20120810#{name}");
    let cancelled = |code: &str| {
        let items = serde_json::from_slice::<serde_json::Value>(request)
            .ok()
            .and_then(|v| v["TransactItems"].as_array().map(Vec::len))
            .unwrap_or(1)
            .max(1);
        let mut reasons: Vec<serde_json::Value> = (0..items - 1).map(|_| serde_json::json!({"Code": "None"})).collect();
        reasons.push(serde_json::json!({"Code": code, "Message": "injected by the test proxy"}));
        error_response(
            StatusCode::BAD_REQUEST,
            serde_json::json!({
                "__type": ty("TransactionCanceledException"),
                "message": format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{code}]"),
                "CancellationReasons": reasons,
            }),
        )
    };
    match fault {
        Fault::TransactionThrottled if operation == "TransactWriteItems" => cancelled("ThrottlingError"),
        Fault::TransactionConflict if operation == "TransactWriteItems" => cancelled("TransactionConflict"),
        Fault::ServerError => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"__type": ty("InternalServerError"), "message": "injected by the test proxy"}),
        ),
        _ => error_response(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"__type": ty("ProvisionedThroughputExceededException"), "message": "Rate exceeded (injected)"}),
        ),
    }
}

/// How many items a write call asks to write.
fn items_written(operation: &str, body: &[u8]) -> usize {
    let parsed = || serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
    match operation {
        "PutItem" | "UpdateItem" | "DeleteItem" => 1,
        "TransactWriteItems" => parsed()["TransactItems"].as_array().map_or(0, Vec::len),
        "BatchWriteItem" => parsed()["RequestItems"].as_object().map_or(0, |tables| {
            tables.values().filter_map(|v| v.as_array()).map(Vec::len).sum()
        }),
        _ => 0,
    }
}

async fn forward(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.calls.fetch_add(1, Ordering::SeqCst);
    let operation = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or_default()
        .to_owned();
    *shared
        .by_operation
        .lock()
        .expect("counts")
        .entry(operation.clone())
        .or_default() += 1;
    shared.request_bytes.fetch_add(body.len(), Ordering::SeqCst);
    shared
        .items_written
        .fetch_add(items_written(&operation, &body), Ordering::SeqCst);
    let fault = fault_for(&shared, &operation);
    if let Some(fault) = fault.filter(|f| *f != Fault::AppliedThenLost) {
        shared.injected.fetch_add(1, Ordering::SeqCst);
        return fault_response(fault, &operation, &body);
    }
    let lose_answer = fault.is_some();
    let mut request = shared.http.post(format!("{}/", shared.upstream)).body(body);
    for (name, value) in headers.iter() {
        if name != "host" && name != "content-length" {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    match request.send().await {
        Ok(_) if lose_answer => {
            shared.injected.fetch_add(1, Ordering::SeqCst);
            fault_response(Fault::ServerError, &operation, &[])
        }
        Ok(upstream) => {
            let status = StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let content_type = upstream.headers().get("content-type").cloned();
            let bytes = upstream.bytes().await.unwrap_or_default();
            let mut r = (status, bytes).into_response();
            if let Some(ct) = content_type.and_then(|c| HeaderValue::from_bytes(c.as_bytes()).ok()) {
                r.headers_mut().insert("content-type", ct);
            }
            r
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
