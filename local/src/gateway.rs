//! The API Gateway WebSocket API, emulated from the template's routes: `$connect` decides whether
//! the upgrade happens (a non-2xx answer refuses it with that status), each message is routed on
//! `$request.body.action` (else `$default`), a route's response body is sent back on the
//! connection, `$disconnect` follows every close, and the `@connections` management API reaches
//! the live sockets. Limits as in AWS: 32 KB frames, 128 KB messages (larger ones close the
//! connection with 1009), and an idle timeout (10 minutes by default).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_lambda_events::encodings::Body;
use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use chrono::Utc;
use relaychat_schema::protocol::{MAX_FRAME_BYTES, MAX_MESSAGE_BYTES};
use tracing::{error, info, warn};

use crate::functions::SharedWebSocketFunction;
use crate::template::RouteSelection;
use relaychat_connections::{self as connections, Connections, Outbound};

/// API Gateway's idle timeout for WebSocket connections.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

pub struct Gateway {
    pub stage: String,
    pub api_id: String,
    pub domain: String,
    /// Route key → function.
    pub routes: BTreeMap<String, Route>,
    pub route_selection: RouteSelection,
    pub connections: Connections,
    pub idle_timeout: Duration,
}

type Shared = Arc<Gateway>;

/// A route's function and its template `Timeout`: an invocation that runs longer is ended, as
/// Lambda ends it, and the client gets what API Gateway sends for a failed integration.
#[derive(Clone)]
pub struct Route {
    pub function: SharedWebSocketFunction,
    pub timeout: Duration,
}

/// API Gateway's body for a failed integration (a Lambda error or timeout).
pub const INTERNAL_ERROR: &str = r#"{"message": "Internal server error", "connectionId":"", "requestId":""}"#;

/// How a route's invocation ended.
pub enum Invocation {
    /// The function answered: status and body.
    Answered(i64, Option<String>),
    /// The function failed (timed out, or its event could not be built).
    Failed,
    /// No such route.
    NoRoute,
}

impl Gateway {
    pub fn router(self) -> Router {
        let connections = self.connections.clone();
        Router::new()
            .route("/{stage}", get(upgrade))
            .with_state(Arc::new(self))
            .merge(connections::router(connections))
    }

    fn event(
        &self,
        route: &str,
        event_type: &str,
        connection: &str,
        extra: serde_json::Value,
    ) -> Result<ApiGatewayWebsocketProxyRequest, serde_json::Error> {
        let now = Utc::now();
        let mut context = serde_json::json!({
            "routeKey": route,
            "eventType": event_type,
            "extendedRequestId": ulid::Ulid::new().to_string(),
            "requestTime": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "messageDirection": "IN",
            "stage": self.stage,
            "connectedAt": now.timestamp_millis(),
            "requestTimeEpoch": now.timestamp_millis(),
            "identity": {"sourceIp": "127.0.0.1"},
            "requestId": ulid::Ulid::new().to_string(),
            "domainName": self.domain,
            "connectionId": connection,
            "apiId": self.api_id,
        });
        let mut event = serde_json::json!({"requestContext": {}, "isBase64Encoded": false});
        if let (Some(ctx), Some(more)) = (
            context.as_object_mut(),
            extra.get("requestContext").and_then(|c| c.as_object()),
        ) {
            ctx.extend(more.clone());
        }
        if let (Some(e), Some(more)) = (event.as_object_mut(), extra.as_object()) {
            e.extend(
                more.iter()
                    .filter(|(k, _)| *k != "requestContext")
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        event["requestContext"] = context;
        serde_json::from_value(event)
    }

    /// Invokes a route's function within its timeout. An event that cannot be built is a failed
    /// invocation, never an empty event.
    async fn call(&self, route: &str, event: Result<ApiGatewayWebsocketProxyRequest, serde_json::Error>) -> Invocation {
        let Some(Route { function, timeout }) = self.routes.get(route) else {
            return Invocation::NoRoute;
        };
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                error!(route, error = %e, "could not build the route's event");
                return Invocation::Failed;
            }
        };
        let started = std::time::Instant::now();
        let Ok(response) = tokio::time::timeout(*timeout, function.invoke_request(&event)).await else {
            error!(route, timeout_secs = timeout.as_secs(), "websocket route timed out");
            return Invocation::Failed;
        };
        info!(
            route,
            status = response.status_code,
            duration_ms = started.elapsed().as_millis(),
            "websocket route invoked"
        );
        let body = match response.body {
            Some(Body::Text(t)) => Some(t),
            Some(Body::Binary(b)) => String::from_utf8(b).ok(),
            _ => None,
        };
        Invocation::Answered(response.status_code, body)
    }

    /// The route a message selects by the API's route selection expression, if the template has
    /// that route; else `$default`.
    fn select_route(&self, body: &str) -> &str {
        let selected = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| self.route_selection.route_key(&v).map(str::to_owned));
        match selected {
            Some(a) if !a.starts_with('$') => self
                .routes
                .get_key_value(a.as_str())
                .map(|(k, _)| k.as_str())
                .unwrap_or("$default"),
            _ => "$default",
        }
    }
}

/// An id shaped like API Gateway's (`L0SM9cOFvHcCIhw=`).
fn new_connection_id() -> String {
    let bytes = ulid::Ulid::new().to_bytes();
    base64::engine::general_purpose::STANDARD.encode(&bytes[5..16])
}

async fn upgrade(
    State(gateway): State<Shared>,
    Path(stage): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if stage != gateway.stage {
        return (StatusCode::FORBIDDEN, "no such stage").into_response();
    }
    let connection = new_connection_id();
    let header_map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), serde_json::Value::String(v.to_str().ok()?.to_owned()))))
        .collect();
    let user_agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let extra = serde_json::json!({
        "headers": header_map,
        "queryStringParameters": query,
        "requestContext": {"identity": {"sourceIp": peer.ip().to_string(), "userAgent": user_agent}},
    });
    let event = gateway.event("$connect", "CONNECT", &connection, extra);
    match gateway.call("$connect", event).await {
        Invocation::Answered(status, _) if !(200..300).contains(&status) => {
            let code = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::FORBIDDEN);
            return (code, code.canonical_reason().unwrap_or("Forbidden")).into_response();
        }
        Invocation::Failed => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response();
        }
        _ => {}
    }
    // Registered before the upgrade completes, so a frame posted right after $connect is kept.
    let outbound = gateway
        .connections
        .register(&connection, &peer.ip().to_string(), &user_agent);
    ws.max_frame_size(MAX_FRAME_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| session(gateway, connection, socket, outbound))
}

async fn session(
    gateway: Shared,
    connection: String,
    mut socket: WebSocket,
    mut outbound: tokio::sync::mpsc::UnboundedReceiver<Outbound>,
) {
    info!(%connection, "websocket connected");
    let (mut status, mut reason) = (1000_u16, String::from("Normal closure"));
    loop {
        tokio::select! {
            incoming = tokio::time::timeout(gateway.idle_timeout, socket.recv()) => match incoming {
                Err(_) => {
                    (status, reason) = (1001, "Going away: idle timeout".into());
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 1001, reason: "Going away".into() }))).await;
                    break;
                }
                Ok(None) | Ok(Some(Ok(Message::Close(_)))) => break,
                Ok(Some(Err(e))) => {
                    // Over the frame or message limit, or a broken socket.
                    warn!(%connection, error = %e, "websocket error; closing");
                    (status, reason) = (1009, "Message too big".into());
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 1009, reason: "Message too big".into() }))).await;
                    break;
                }
                Ok(Some(Ok(message))) => {
                    gateway.connections.touch(&connection);
                    let (body, base64) = match message {
                        Message::Text(t) => (t.to_string(), false),
                        Message::Binary(b) => (base64::engine::general_purpose::STANDARD.encode(&b), true),
                        _ => continue,
                    };
                    let route = if base64 { "$default" } else { gateway.select_route(&body) }.to_owned();
                    let extra = serde_json::json!({"body": body, "isBase64Encoded": base64,
                        "requestContext": {"messageId": ulid::Ulid::new().to_string()}});
                    let event = gateway.event(&route, "MESSAGE", &connection, extra);
                    let reply = match gateway.call(&route, event).await {
                        // API Gateway cannot send a message over 128 KB: the reply is lost.
                        Invocation::Answered(_, Some(reply)) if reply.len() > MAX_MESSAGE_BYTES => {
                            error!(%route, bytes = reply.len(), "route response over 128 KB: not sent");
                            Some(INTERNAL_ERROR.to_owned())
                        }
                        Invocation::Answered(_, reply) => reply,
                        Invocation::Failed => Some(INTERNAL_ERROR.to_owned()),
                        Invocation::NoRoute => {
                            Some(r#"{"message": "Forbidden", "connectionId":"", "requestId":""}"#.to_owned())
                        }
                    };
                    if let Some(reply) = reply
                        && socket.send(Message::Text(reply.into())).await.is_err()
                    {
                        break;
                    }
                }
            },
            frame = outbound.recv() => match frame {
                Some(Outbound::Frame(bytes)) => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close) | None => {
                    (status, reason) = (1000, "Closed by the @connections API".into());
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
            },
        }
    }
    gateway.connections.remove(&connection);
    let extra = serde_json::json!({"requestContext": {"disconnectStatusCode": status, "disconnectReason": reason}});
    let event = gateway.event("$disconnect", "DISCONNECT", &connection, extra);
    gateway.call("$disconnect", event).await;
    info!(%connection, status, "websocket disconnected");
}
