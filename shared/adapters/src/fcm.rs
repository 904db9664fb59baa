//! FCM HTTP v1: a Google service account signs a JWT, trades it for an OAuth access token (cached
//! until shortly before it expires), and each push is one `messages:send` call.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use relaychat_core::Error;
use relaychat_core::ports::{Device, PushResult, PushSender};
use relaychat_schema::Notification;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::debug;

use crate::{ConfigError, optional};

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const DEFAULT_ENDPOINT: &str = "https://fcm.googleapis.com";
/// Renew the access token this long before Google says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// The fields of a Google service-account key file that FCM needs.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceAccountKey {
    pub project_id: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
    pub private_key: String,
    pub client_email: String,
    pub token_uri: String,
}

struct CachedToken {
    value: String,
    renew_at: Instant,
}

pub struct FcmSender {
    http: reqwest::Client,
    key: ServiceAccountKey,
    signing_key: EncodingKey,
    send_url: String,
    token: Mutex<Option<CachedToken>>,
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default = "default_expiry")]
    expires_in: u64,
}

fn default_expiry() -> u64 {
    3600
}

impl FcmSender {
    /// `endpoint` replaces `https://fcm.googleapis.com` (tests, local sinks).
    pub fn new(key: ServiceAccountKey, endpoint: Option<&str>) -> Result<Self, ConfigError> {
        let signing_key =
            EncodingKey::from_rsa_pem(key.private_key.as_bytes()).map_err(|e| ConfigError::FcmKey(Box::new(e)))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(ConfigError::Http)?;
        let base = endpoint.unwrap_or(DEFAULT_ENDPOINT).trim_end_matches('/');
        let send_url = format!("{base}/v1/projects/{}/messages:send", key.project_id);
        Ok(Self {
            http,
            key,
            signing_key,
            send_url,
            token: Mutex::new(None),
        })
    }

    /// The service account from `FCM_SERVICE_ACCOUNT_JSON` (the key file's content),
    /// `FCM_SERVICE_ACCOUNT_FILE`, or the Secrets Manager secret `FCM_SECRET_ARN`; the base URL
    /// from `FCM_ENDPOINT`. `None` when none is set: push is not configured.
    pub async fn from_env(config: &aws_config::SdkConfig) -> Result<Option<Self>, ConfigError> {
        let json = if let Some(json) = optional("FCM_SERVICE_ACCOUNT_JSON") {
            json
        } else if let Some(path) = optional("FCM_SERVICE_ACCOUNT_FILE") {
            std::fs::read_to_string(&path).map_err(|e| ConfigError::FcmKey(Box::new(e)))?
        } else if let Some(arn) = optional("FCM_SECRET_ARN") {
            crate::secrets::secret_string(config, &arn).await?
        } else {
            return Ok(None);
        };
        let key: ServiceAccountKey = serde_json::from_str(&json).map_err(|e| ConfigError::FcmKey(Box::new(e)))?;
        Self::new(key, optional("FCM_ENDPOINT").as_deref()).map(Some)
    }

    async fn access_token(&self) -> Result<String, Error> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(t.value.clone());
        }
        let now = chrono::Utc::now().timestamp();
        let claims = Assertion {
            iss: &self.key.client_email,
            scope: SCOPE,
            aud: &self.key.token_uri,
            iat: now,
            exp: now + 3600,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key.private_key_id.clone();
        let assertion = jsonwebtoken::encode(&header, &claims, &self.signing_key)
            .map_err(|e| Error::rejected("sign FCM assertion", e))?;
        let response = self
            .http
            .post(&self.key.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| Error::unavailable("fetch FCM access token", e))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let err = format!("token endpoint answered {status}: {body}");
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                Error::unavailable("fetch FCM access token", err)
            } else {
                Error::rejected("fetch FCM access token", err)
            });
        }
        let token: TokenResponse = response
            .json()
            .await
            .map_err(|e| Error::unavailable("read FCM access token", e))?;
        let lifetime = Duration::from_secs(token.expires_in).saturating_sub(TOKEN_MARGIN);
        *cached = Some(CachedToken {
            value: token.access_token.clone(),
            renew_at: Instant::now() + lifetime,
        });
        debug!(expires_in = token.expires_in, "FCM access token refreshed");
        Ok(token.access_token)
    }
}

/// FCM's error body: `{"error":{"status":..,"details":[{"errorCode":"UNREGISTERED"}, ...]}}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Deserialize, Default)]
struct ErrorDetail {
    #[serde(default)]
    details: Vec<serde_json::Value>,
}

/// What an FCM error says about the device token.
#[derive(Debug, PartialEq, Eq)]
enum TokenVerdict {
    /// `UNREGISTERED`: the app was uninstalled or the token expired.
    Unregistered,
    /// The token itself is refused: not a valid token, or another sender's.
    Rejected(&'static str),
    /// Nothing about the token (the payload, quota, the service, the URL).
    NotTheToken,
}

fn token_verdict(body: &str) -> TokenVerdict {
    let parsed: ErrorBody = serde_json::from_str(body).unwrap_or_default();
    let codes: Vec<&str> = parsed
        .error
        .details
        .iter()
        .filter_map(|d| d.get("errorCode").and_then(|c| c.as_str()))
        .collect();
    if codes.contains(&"UNREGISTERED") {
        return TokenVerdict::Unregistered;
    }
    if codes.contains(&"SENDER_ID_MISMATCH") {
        return TokenVerdict::Rejected("the token belongs to another sender");
    }
    let token_field_refused = parsed.error.details.iter().any(|d| {
        d.get("fieldViolations").and_then(|v| v.as_array()).is_some_and(|v| {
            v.iter()
                .any(|f| f.get("field").and_then(|x| x.as_str()) == Some("message.token"))
        })
    });
    if codes.contains(&"INVALID_ARGUMENT") && token_field_refused {
        return TokenVerdict::Rejected("not a valid registration token");
    }
    TokenVerdict::NotTheToken
}

impl PushSender for FcmSender {
    async fn send(&self, device: &Device, note: &Notification) -> Result<PushResult, Error> {
        let token = self.access_token().await?;
        let mut data = serde_json::Map::new();
        data.insert("notificationId".into(), note.notification_id.clone().into());
        if let Some(c) = &note.conversation_id {
            data.insert("conversationId".into(), c.to_string().into());
        }
        if let Some(m) = &note.message_id {
            data.insert("messageId".into(), m.to_string().into());
        }
        let body = serde_json::json!({
            "message": {
                "token": device.token,
                "notification": {"title": note.title, "body": note.body},
                "data": data,
            }
        });
        let mut request = self.http.post(&self.send_url).bearer_auth(token).json(&body);
        // The message's trace goes on to the push (W3C trace context over HTTP).
        if let Some(current) = relaychat_core::trace::current() {
            request = request.header(relaychat_core::trace::TRACEPARENT, current.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::unavailable("send FCM message", e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(PushResult::Sent);
        }
        let text = response.text().await.unwrap_or_default();
        // Only FCM's word about the token deletes it: a bare 404 (a wrong URL) says nothing.
        match token_verdict(&text) {
            TokenVerdict::Unregistered => return Ok(PushResult::Unregistered),
            TokenVerdict::Rejected(why) => return Ok(PushResult::TokenRejected(why.into())),
            TokenVerdict::NotTheToken => {}
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            // The token was revoked or expired early: drop it, the retry fetches a new one.
            *self.token.lock().await = None;
        }
        let err = format!("FCM answered {status}: {text}");
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 401 {
            Err(Error::unavailable("send FCM message", err))
        } else {
            Err(Error::rejected("send FCM message", err))
        }
    }
}

/// The push service in force: FCM when a service account is configured, otherwise none, in which
/// case a notification for a user with devices fails permanently (and is dead-lettered) with a
/// reason that says so, rather than vanish.
pub enum PushService {
    Fcm(Box<FcmSender>),
    NotConfigured,
}

impl PushService {
    pub async fn from_env(config: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        Ok(FcmSender::from_env(config)
            .await?
            .map_or(Self::NotConfigured, |f| Self::Fcm(Box::new(f))))
    }
}

impl PushSender for PushService {
    async fn send(&self, device: &Device, note: &Notification) -> Result<PushResult, Error> {
        match self {
            Self::Fcm(fcm) => fcm.send(device, note).await,
            Self::NotConfigured => Err(Error::rejected(
                "push",
                "FCM is not configured (set FCM_SERVICE_ACCOUNT_JSON or FCM_SERVICE_ACCOUNT_FILE)",
            )),
        }
    }
}
