//! The API Gateway HTTP API, emulated from the template under `/api` on the local HTTP port: a
//! request is matched to one of the template's routes (`GET /conversations/{conversationId}/…`),
//! its `Authorization` header goes to the template's Lambda authorizer (payload 2.0, simple
//! responses; answers cached by the header for the template's `ReauthorizeEvery`), and the route's
//! function gets the payload-2.0 event Lambda would get, through `lambda_http`'s own conversion.
//! API Gateway's own refusals are kept: 404 for no route, 401 without the header, 403 when the
//! authorizer says no, 503 when the function runs out of time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request, ApiGatewayV2httpRequest,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::Utc;
use lambda_http::request::LambdaRequest;
use percent_encoding::percent_decode_str;
use relaychat_schema::http::match_route;
use serde_json::{Value, json};
use tracing::{error, info};

use crate::functions::{SharedAuthorizer, SharedHttpFunction};

/// A route: the function behind it and its template `Timeout`.
#[derive(Clone)]
pub struct HttpRoute {
    pub function: SharedHttpFunction,
    pub timeout: Duration,
}

pub struct HttpGateway {
    pub api_id: String,
    pub domain: String,
    /// Route key (`GET /unread`) → its function.
    pub routes: BTreeMap<String, HttpRoute>,
    pub authorizer: Option<SharedAuthorizer>,
    /// How long an authorizer's answer is reused for the same `Authorization` header.
    pub authorizer_ttl: Duration,
    cache: Mutex<BTreeMap<String, (Instant, ApiGatewayV2CustomAuthorizerSimpleResponse)>>,
}

/// A matched route: its key, the route, and the request's path parameters (decoded).
type Matched<'a> = (&'a String, &'a HttpRoute, Vec<(String, String)>);

/// Most answers the authorizer cache keeps (API Gateway's is bounded too).
const CACHE_CAPACITY: usize = 10_000;

impl HttpGateway {
    pub fn new(
        api_id: String,
        domain: String,
        routes: BTreeMap<String, HttpRoute>,
        authorizer: Option<SharedAuthorizer>,
        authorizer_ttl: Duration,
    ) -> Self {
        Self {
            api_id,
            domain,
            routes,
            authorizer,
            authorizer_ttl,
            cache: Mutex::new(BTreeMap::new()),
        }
    }

    /// Every path under `/api`.
    pub fn router(self) -> Router {
        let gateway = Arc::new(self);
        Router::new()
            .route("/api", axum::routing::any(handle))
            .route("/api/{*path}", axum::routing::any(handle))
            .with_state(gateway)
    }

    /// The route whose key matches the request, with its decoded path parameters.
    fn route(&self, method: &Method, path: &str) -> Option<Matched<'_>> {
        self.routes.iter().find_map(|(key, route)| {
            let params = match_route(key, method.as_str(), path)?
                .into_iter()
                .map(|(name, value)| {
                    (
                        name.to_owned(),
                        percent_decode_str(value).decode_utf8_lossy().into_owned(),
                    )
                })
                .collect();
            Some((key, route, params))
        })
    }

    /// The authorizer's answer for this header: cached, or asked for now.
    async fn authorize(&self, authorization: &str, event: Value) -> Result<Option<Value>, StatusCode> {
        let Some(authorizer) = &self.authorizer else {
            return Ok(None);
        };
        let cached = self.cache.lock().ok().and_then(|cache| {
            cache
                .get(authorization)
                .filter(|(at, _)| at.elapsed() < self.authorizer_ttl)
                .map(|(_, answer)| answer.clone())
        });
        let answer = match cached {
            Some(answer) => answer,
            None => {
                let request: ApiGatewayV2CustomAuthorizerV2Request = serde_json::from_value(event).map_err(|e| {
                    error!(error = %e, "could not build the authorizer's event");
                    StatusCode::INTERNAL_SERVER_ERROR
                })?;
                let answer = authorizer.invoke_authorizer(&request).await;
                if !self.authorizer_ttl.is_zero()
                    && let Ok(mut cache) = self.cache.lock()
                {
                    if cache.len() >= CACHE_CAPACITY {
                        cache.clear();
                    }
                    cache.insert(authorization.to_owned(), (Instant::now(), answer.clone()));
                }
                answer
            }
        };
        if answer.is_authorized {
            Ok(Some(answer.context))
        } else {
            Err(StatusCode::FORBIDDEN)
        }
    }
}

/// API Gateway's body for its own refusals.
fn gateway_answer(status: StatusCode) -> Response {
    let message = status.canonical_reason().unwrap_or("Error");
    (status, axum::Json(json!({ "message": message }))).into_response()
}

async fn handle(
    State(gateway): State<Arc<HttpGateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().strip_prefix("/api").unwrap_or(uri.path());
    let path = if path.is_empty() { "/" } else { path };
    let Some((route_key, route, path_parameters)) = gateway.route(&method, path) else {
        return gateway_answer(StatusCode::NOT_FOUND);
    };
    let now = Utc::now();
    let raw_query = uri.query().unwrap_or_default();
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        query.entry(name.into_owned()).or_default().push(value.into_owned());
    }
    let mut header_values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &headers {
        if let Ok(value) = value.to_str() {
            header_values
                .entry(name.as_str().to_ascii_lowercase())
                .or_default()
                .push(value.to_owned());
        }
    }
    // Payload 2.0 joins repeated headers and query parameters with commas.
    let joined = |m: &BTreeMap<String, Vec<String>>| -> serde_json::Map<String, Value> {
        m.iter().map(|(k, v)| (k.clone(), Value::from(v.join(",")))).collect()
    };
    let http = json!({
        "method": method.as_str(),
        "path": path,
        "protocol": "HTTP/1.1",
        "sourceIp": peer.ip().to_string(),
        "userAgent": header_values.get("user-agent").and_then(|v| v.first()).cloned().unwrap_or_default(),
    });
    let mut context = json!({
        "accountId": "000000000000",
        "apiId": gateway.api_id,
        "domainName": gateway.domain,
        "domainPrefix": "local",
        "http": http,
        "requestId": ulid::Ulid::new().to_string(),
        "routeKey": route_key,
        "stage": "$default",
        "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
        "timeEpoch": now.timestamp_millis(),
    });
    let path_parameters: serde_json::Map<String, Value> =
        path_parameters.into_iter().map(|(k, v)| (k, Value::from(v))).collect();

    if gateway.authorizer.is_some() {
        let Some(authorization) = header_values.get("authorization").and_then(|v| v.first()).cloned() else {
            return gateway_answer(StatusCode::UNAUTHORIZED);
        };
        let event = json!({
            "version": "2.0",
            "type": "REQUEST",
            "routeArn": format!("arn:aws:execute-api:local:000000000000:{}/$default/{}{}", gateway.api_id, method, path),
            "identitySource": [authorization.clone()],
            "routeKey": route_key,
            "rawPath": path,
            "rawQueryString": raw_query,
            "headers": joined(&header_values),
            "queryStringParameters": joined(&query),
            "pathParameters": path_parameters,
            "requestContext": context.clone(),
        });
        match gateway.authorize(&authorization, event).await {
            Ok(Some(lambda)) => context["authorizer"] = json!({ "lambda": lambda }),
            Ok(None) => {}
            Err(status) => return gateway_answer(status),
        }
    }

    let (body, base64) = match std::str::from_utf8(&body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(&body), true),
    };
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": joined(&header_values),
        "requestContext": context,
        "isBase64Encoded": base64,
    });
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(joined(&query));
    }
    if !path_parameters.is_empty() {
        event["pathParameters"] = Value::Object(path_parameters);
    }
    if !body.is_empty() {
        event["body"] = Value::from(body);
    }
    let event: ApiGatewayV2httpRequest = match serde_json::from_value(event) {
        Ok(event) => event,
        Err(e) => {
            error!(route = %route_key, error = %e, "could not build the route's event");
            return gateway_answer(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let request: lambda_http::Request = LambdaRequest::ApiGatewayV2(event).into();
    let started = Instant::now();
    let Ok(response) = tokio::time::timeout(route.timeout, route.function.invoke_http(request)).await else {
        error!(route = %route_key, timeout_secs = route.timeout.as_secs(), "http route timed out");
        return gateway_answer(StatusCode::SERVICE_UNAVAILABLE);
    };
    info!(
        route = %route_key,
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_millis(),
        "http route invoked"
    );
    let (parts, body) = response.into_parts();
    let bytes = match body {
        lambda_http::Body::Text(text) => text.into_bytes(),
        lambda_http::Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    Response::from_parts(parts, axum::body::Body::from(bytes))
}
