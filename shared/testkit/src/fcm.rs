//! A local stand-in for Google's OAuth token endpoint and FCM's `messages:send`, checking what
//! the real ones check: the RS256 assertion's signature, audience, issuer, scope and key id, and
//! the bearer token. Device tokens steer the answer: `dead` → 404 UNREGISTERED, `busy` → 503,
//! `malformed` → 400, `invalid-token` → 400 INVALID_ARGUMENT on `message.token`, `other-sender`
//! → 403 SENDER_ID_MISMATCH, `lost` → a bare 404; anything else is accepted.

use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use relaychat_adapters::fcm::{FcmSender, ServiceAccountKey};

const PRIVATE_KEY: &str = include_str!("../fixtures/fcm-test-key.pem");
const PUBLIC_KEY: &str = include_str!("../fixtures/fcm-test-key.pub.pem");

/// What the stand-in saw.
#[derive(Default)]
pub struct Google {
    pub token_url: String,
    pub tokens_issued: usize,
    pub sends: Vec<serde_json::Value>,
    /// The `traceparent` of each send (empty when it had none).
    pub traceparents: Vec<String>,
}

pub type Shared = Arc<Mutex<Google>>;

async fn token(State(g): State<Shared>, Form(form): Form<std::collections::HashMap<String, String>>) -> Response {
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return (StatusCode::BAD_REQUEST, "unsupported grant").into_response();
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[g.lock().unwrap().token_url.clone()]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        form.get("assertion").map(String::as_str).unwrap_or_default(),
        &DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap(),
        &validation,
    );
    let Ok(claims) = claims else {
        return (StatusCode::BAD_REQUEST, "invalid_grant").into_response();
    };
    if claims.claims["iss"] != "relaychat@test.iam.gserviceaccount.com"
        || claims.claims["scope"] != "https://www.googleapis.com/auth/firebase.messaging"
        || claims.header.kid.as_deref() != Some("k1")
    {
        return (StatusCode::BAD_REQUEST, "invalid_scope").into_response();
    }
    g.lock().unwrap().tokens_issued += 1;
    axum::Json(serde_json::json!({"access_token": "ya29.test", "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

async fn send(
    State(g): State<Shared>,
    Path(project): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> Response {
    if project != "relaychat-test" {
        return (StatusCode::NOT_FOUND, "no such project").into_response();
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer ya29.test") {
        return (StatusCode::UNAUTHORIZED, "no token").into_response();
    }
    let device = body["message"]["token"].as_str().unwrap_or_default().to_owned();
    {
        let mut g = g.lock().unwrap();
        g.sends.push(body);
        let traceparent = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        g.traceparents.push(traceparent.to_owned());
    }
    match device.as_str() {
        "dead" => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": {"code": 404, "status": "NOT_FOUND",
                "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}})),
        )
            .into_response(),
        "busy" => (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response(),
        "malformed" => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT").into_response(),
        // FCM's answers for a token it refuses (not unregistered): a bad token, another sender's.
        "invalid-token" => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                "message": "The registration token is not a valid FCM registration token",
                "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"},
                            {"@type": "type.googleapis.com/google.rpc.BadRequest",
                             "fieldViolations": [{"field": "message.token", "description": "Invalid registration token"}]}]}})),
        )
            .into_response(),
        "other-sender" => (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({"error": {"code": 403, "status": "PERMISSION_DENIED",
                "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "SENDER_ID_MISMATCH"}]}})),
        )
            .into_response(),
        // A 404 that is not UNREGISTERED (e.g. a wrong URL): says nothing about the token.
        "lost" => (StatusCode::NOT_FOUND, "Not Found").into_response(),
        _ => axum::Json(serde_json::json!({"name": "projects/relaychat-test/messages/1"})).into_response(),
    }
}

/// Starts the stand-in on a free port; returns a sender configured for it.
pub async fn stand_in() -> (FcmSender, Shared) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shared = Shared::new(Mutex::new(Google {
        token_url: format!("{base}/token"),
        ..Google::default()
    }));
    let app = axum::Router::new()
        .route("/token", post(token))
        .route("/v1/projects/{project}/messages:send", post(send))
        .with_state(shared.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let key = ServiceAccountKey {
        project_id: "relaychat-test".into(),
        private_key_id: Some("k1".into()),
        private_key: PRIVATE_KEY.into(),
        client_email: "relaychat@test.iam.gserviceaccount.com".into(),
        token_uri: format!("{base}/token"),
    };
    (FcmSender::new(key, Some(&base)).unwrap(), shared)
}
