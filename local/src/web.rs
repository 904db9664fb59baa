//! The developer web server: the chat page and the dashboard from `web/`, a token mint for dev
//! users, the runtime's settings for the page, `/dev/status` (per-function counters, consumer lag
//! and recent invocations) and the dead letters (`/dev/dead-letters`, listed and redriven with
//! the operator command's code).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use relaychat_adapters::auth::{TokenRules, mint_token};
use relaychat_adapters::kafka::{KafkaPublisher, KafkaSettings};
use relaychat_schema::UserId;

use crate::esm::Stats;
use relaychat_admin::dlq;

pub struct Web {
    pub dir: PathBuf,
    pub ws_url: String,
    pub jwt_secret: String,
    pub stats: Stats,
    /// The broker, its dead-letter topics, and a producer for redrives.
    pub kafka: KafkaSettings,
    pub dead_letter_topics: Vec<String>,
    pub publisher: KafkaPublisher,
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
            .route("/dev/dead-letters", get(dead_letters))
            .route("/dev/dead-letters/redrive", post(redrive))
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

/// Dead letters listed per topic: its newest (a topic keeps 14 days of them).
const DEAD_LETTERS_SHOWN: usize = 100;

/// `GET /dev/dead-letters`: each function's newest dead letters (`DEAD_LETTERS_SHOWN`), newest
/// last.
async fn dead_letters(State(web): State<Shared>) -> Response {
    let read = {
        let web = web.clone();
        tokio::task::spawn_blocking(move || {
            let (mut all, mut totals) = (Vec::new(), BTreeMap::new());
            for topic in &web.dead_letter_topics {
                let letters = dlq::read(&web.kafka, topic)?;
                totals.insert(topic.clone(), letters.len());
                let skip = letters.len().saturating_sub(DEAD_LETTERS_SHOWN);
                all.extend(letters.into_iter().skip(skip));
            }
            Ok::<_, relaychat_admin::AdminError>((all, totals))
        })
    };
    match read.await {
        Ok(Ok((letters, totals))) => {
            let now = chrono::Utc::now();
            let rows: Vec<serde_json::Value> = letters
                .iter()
                .map(|l| {
                    serde_json::json!({
                        "at": l.at.to_string(),
                        "consumer": l.consumer(),
                        "source": l.source().map(|s| s.to_string()),
                        "reason": l.reason(),
                        "redrives": l.redrives(),
                        "ageSeconds": l.age(now).map(|a| a.num_seconds()),
                        "value": String::from_utf8_lossy(&l.value),
                    })
                })
                .collect();
            axum::Json(serde_json::json!({ "deadLetters": rows, "totals": totals })).into_response()
        }
        Ok(Err(e)) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `POST /dev/dead-letters/redrive` `{"at": "persist-message-dlq-0@3"}`: that dead letter back on
/// its source topic.
async fn redrive(State(web): State<Shared>, axum::Json(body): axum::Json<serde_json::Value>) -> Response {
    let Some(at) = body["at"].as_str().and_then(|a| a.parse::<dlq::RecordAt>().ok()) else {
        return (StatusCode::BAD_REQUEST, "at: topic-partition@offset is required").into_response();
    };
    if !web.dead_letter_topics.contains(&at.topic) {
        return (
            StatusCode::NOT_FOUND,
            format!("{} is not a dead-letter topic", at.topic),
        )
            .into_response();
    }
    let letters = {
        let (web, topic) = (web.clone(), at.topic.clone());
        tokio::task::spawn_blocking(move || dlq::read(&web.kafka, &topic)).await
    };
    let letter = match letters {
        Ok(Ok(letters)) => letters.into_iter().find(|l| l.at == at),
        Ok(Err(e)) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let Some(letter) = letter else {
        return (StatusCode::NOT_FOUND, format!("no dead letter at {at}")).into_response();
    };
    match dlq::redrive(&web.publisher, &letter).await {
        Ok(dlq::Redrive::Sent(to)) => axum::Json(serde_json::json!({ "redriven": to.to_string() })).into_response(),
        Ok(dlq::Redrive::Refused(why)) => {
            (StatusCode::CONFLICT, axum::Json(serde_json::json!({ "refused": why }))).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
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
