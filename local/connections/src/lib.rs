//! The `@connections` management API of an API Gateway WebSocket stage, emulated:
//! `POST|GET|DELETE /{stage}/@connections/{connectionId}`. Unknown ids answer 410 with
//! `x-amzn-ErrorType: GoneException`, as API Gateway does, so the AWS SDK's `is_gone_exception()`
//! holds. The SDK signs its requests (SigV4); locally the signature is not verified.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::mpsc;

/// Largest payload `PostToConnection` takes (API Gateway's limit: 128 KB).
pub const MAX_POST_BYTES: usize = 128 * 1024;

/// What the gateway sends down a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    Frame(Vec<u8>),
    /// `DeleteConnection`: the gateway closes the socket.
    Close,
}

struct Entry {
    sender: mpsc::UnboundedSender<Outbound>,
    connected_at: DateTime<Utc>,
    last_active_at: DateTime<Utc>,
    source_ip: String,
    user_agent: String,
}

/// Live connections by id. The WebSocket gateway registers each socket here; `@connections`
/// calls reach them through it.
#[derive(Clone, Default)]
pub struct Connections {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a connection; frames posted to it arrive on the returned receiver.
    pub fn register(&self, id: &str, source_ip: &str, user_agent: &str) -> mpsc::UnboundedReceiver<Outbound> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let now = Utc::now();
        let entry = Entry {
            sender,
            connected_at: now,
            last_active_at: now,
            source_ip: source_ip.into(),
            user_agent: user_agent.into(),
        };
        self.lock().insert(id.to_owned(), entry);
        receiver
    }

    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    /// Notes client activity (for `LastActiveAt`).
    pub fn touch(&self, id: &str) {
        if let Some(e) = self.lock().get_mut(id) {
            e.last_active_at = Utc::now();
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn send(&self, id: &str, outbound: Outbound) -> bool {
        let mut map = self.lock();
        match map.get(id) {
            Some(e) if e.sender.send(outbound.clone()).is_ok() => true,
            Some(_) => {
                // The socket task ended: the connection is gone.
                map.remove(id);
                false
            }
            None => false,
        }
    }
}

/// The routes, to be served on the gateway's port.
pub fn router(connections: Connections) -> Router {
    Router::new()
        .route(
            "/{stage}/@connections/{id}",
            post(post_to_connection).get(get_connection).delete(delete_connection),
        )
        .with_state(connections)
}

fn aws_error(status: StatusCode, kind: &'static str, message: &str) -> Response {
    let mut response = (status, axum::Json(serde_json::json!({ "message": message }))).into_response();
    response
        .headers_mut()
        .insert("x-amzn-ErrorType", HeaderValue::from_static(kind));
    response
}

fn gone() -> Response {
    aws_error(StatusCode::GONE, "GoneException", "the connection is gone")
}

async fn post_to_connection(
    State(connections): State<Connections>,
    Path((_stage, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if body.len() > MAX_POST_BYTES {
        return aws_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            "payload exceeds 128 KB",
        );
    }
    if connections.send(&id, Outbound::Frame(body.to_vec())) {
        StatusCode::OK.into_response()
    } else {
        gone()
    }
}

async fn get_connection(
    State(connections): State<Connections>,
    Path((_stage, id)): Path<(String, String)>,
) -> Response {
    let map = connections.lock();
    let Some(e) = map.get(&id) else { return gone() };
    let body = serde_json::json!({
        "ConnectedAt": e.connected_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "LastActiveAt": e.last_active_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "Identity": {"SourceIp": e.source_ip, "UserAgent": e.user_agent},
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn delete_connection(
    State(connections): State<Connections>,
    Path((_stage, id)): Path<(String, String)>,
    _headers: HeaderMap,
) -> Response {
    if connections.send(&id, Outbound::Close) {
        connections.remove(&id);
        StatusCode::NO_CONTENT.into_response()
    } else {
        gone()
    }
}

/// Serves the routes on `127.0.0.1:port` (0: any free port); returns the bound address.
pub async fn serve(connections: Connections, port: u16) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(connections)).await {
            tracing::error!(error = %e, "@connections server stopped");
        }
    });
    Ok(addr)
}
