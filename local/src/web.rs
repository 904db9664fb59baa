//! The developer web server: the chat page from `web/`, a token mint for dev users, the
//! runtime's settings for the page, and `/dev/status` (per-function counters and consumer lag).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use relaychat_adapters::auth::{TokenRules, mint_token};
use relaychat_schema::UserId;

use crate::esm::Stats;

pub struct Web {
    pub dir: PathBuf,
    pub ws_url: String,
    pub jwt_secret: String,
    pub stats: Stats,
}

type Shared = Arc<Web>;

impl Web {
    pub fn router(self) -> Router {
        Router::new()
            .route(
                "/",
                get(|s: State<Shared>| async move { file(s, Path("index.html".into())).await }),
            )
            .route("/config.json", get(config))
            .route("/dev/token", get(token))
            .route("/dev/status", get(status))
            .route("/{file}", get(file))
            .with_state(Arc::new(self))
    }
}

async fn config(State(web): State<Shared>) -> Response {
    axum::Json(serde_json::json!({ "wsUrl": web.ws_url })).into_response()
}

/// `GET /dev/token?user=alice&name=Alice`: a 12-hour token for a dev user. Local only.
async fn token(State(web): State<Shared>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let user = q.get("user").cloned().unwrap_or_default();
    if let Err(e) = UserId::parse(user.as_str()) {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response();
    }
    let name = q
        .get("name")
        .filter(|n| !n.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| user.clone());
    match mint_token(
        web.jwt_secret.as_bytes(),
        &user,
        &name,
        12 * 60 * 60,
        &TokenRules::from_env(),
    ) {
        Ok(token) => axum::Json(serde_json::json!({ "token": token, "user": user, "name": name })).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn status(State(web): State<Shared>) -> Response {
    let stats = web.stats.lock().map(|s| s.clone()).unwrap_or_default();
    axum::Json(serde_json::json!({ "mappings": stats })).into_response()
}

async fn file(State(web): State<Shared>, Path(name): Path<String>) -> Response {
    if name.contains("..") || name.contains('/') || name.starts_with('.') {
        return StatusCode::NOT_FOUND.into_response();
    }
    let content_type = match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    match tokio::fs::read(web.dir.join(&name)).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
