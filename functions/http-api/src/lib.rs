//! http-api (every route of the HTTP API, docs/openapi.yaml): reads the route's request into the
//! same command a WebSocket action is, performs it as the user the authorizer verified, and answers
//! with the resource, or a problem document with the refusal's code and HTTP status.

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use relaychat_adapters::connections_api::ConnectionsApi;
use relaychat_adapters::dynamo::DynamoStore;
use relaychat_adapters::kafka::KafkaPublisher;
use relaychat_adapters::lambda::HttpFunction;
use relaychat_adapters::{ConfigError, Deps};
use relaychat_core::actions::{Front, Rules, Sender};
use relaychat_core::ports::{
    AnalyticsStore, ConnectionDirectory, ConnectionRegistry, ConversationStore, DeviceStore, FramePoster, Identity,
    PresenceStore, Publisher,
};
use relaychat_core::remembered::Remembered;
use relaychat_core::trace::{self, Trace};
use relaychat_schema::Topics;
use relaychat_schema::http::{HttpRequest, HttpResponse, Route};
use relaychat_schema::protocol::{ErrorCode, Refusal};
use relaychat_schema::{DisplayName, UserId};
use tracing::{Instrument, info_span, warn};

/// The function's name in the template and its logs.
pub const NAME: &str = "http-api";

/// How long a request may take: inside the function's 10 s timeout, with room to answer.
pub const REQUEST_BUDGET: std::time::Duration = std::time::Duration::from_secs(8);

/// The authorizer's context keys (http-authorizer puts them there).
pub const USER_ID: &str = "userId";
pub const USER_NAME: &str = "name";

pub struct HttpApi<S, P, F> {
    pub store: S,
    pub publisher: P,
    /// `@connections` of the WebSocket API: a new conversation is announced to its members.
    pub poster: F,
    pub topics: Topics,
    pub rules: Rules,
}

impl<S, P, F> HttpApi<S, P, F>
where
    S: ConversationStore + ConnectionRegistry + DeviceStore + ConnectionDirectory + PresenceStore + AnalyticsStore,
    P: Publisher,
    F: FramePoster,
{
    pub async fn invoke(&self, request: Request) -> Response<Body> {
        let answer = match tokio::time::timeout(REQUEST_BUDGET, self.answer(&request)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(refusal)) => {
                warn!(code = ?refusal.code, message = %refusal.message, "request refused");
                HttpResponse::problem(&refusal)
            }
            Err(_) => {
                warn!(budget_ms = REQUEST_BUDGET.as_millis(), "request ran out of time");
                HttpResponse::problem(&Refusal::new(ErrorCode::Unavailable, "the service is busy; try again"))
            }
        };
        into_response(answer)
    }

    async fn answer(&self, request: &Request) -> Result<HttpResponse, Refusal> {
        let context = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => context,
            _ => return Err(Refusal::new(ErrorCode::Unauthorized, "no API Gateway request context")),
        };
        let identity = identity(context.authorizer.as_ref().map(|a| &a.fields))?;
        let route_key = context.route_key.as_deref().unwrap_or_default();
        let route = Route::find(route_key)
            .ok_or_else(|| Refusal::new(ErrorCode::UnknownAction, format!("no route {route_key}")))?;
        let body = match request.body() {
            Body::Empty => "",
            Body::Text(text) => text.as_str(),
            Body::Binary(bytes) => std::str::from_utf8(bytes)
                .map_err(|_| Refusal::new(ErrorCode::InvalidJson, "the body is not UTF-8 text"))?,
            _ => "",
        };
        let path_parameters = request
            .path_parameters_ref()
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        let query = request
            .query_string_parameters_ref()
            .map(|q| q.iter().collect())
            .unwrap_or_default();
        let idempotency_key = request.headers().get("idempotency-key").and_then(|v| v.to_str().ok());
        let command = route.command(&HttpRequest {
            path_parameters,
            query,
            body,
            idempotency_key,
        })?;
        // A caller's `traceparent` is continued; else the trace starts here.
        let trace = Trace::continue_from(request.headers().get(trace::TRACEPARENT).map(|v| v.as_bytes()));
        let span = info_span!(
            "request",
            function = NAME,
            route = route.key,
            user = %identity.user,
            trace_id = %trace.trace_hex(),
            span_id = %trace.span_hex(),
            parent_span_id = trace.parent_hex().map(tracing::field::display),
        );
        let sender = Sender::http(identity);
        let front = Front {
            store: &self.store,
            publisher: &self.publisher,
            poster: &self.poster,
            topics: &self.topics,
            rules: &self.rules,
        };
        let reply = front.act(&sender, command, trace, None).instrument(span).await?;
        Ok(HttpResponse::answer(route, reply.as_ref()))
    }
}

/// The user the authorizer verified, from its context.
fn identity(fields: Option<&std::collections::HashMap<String, serde_json::Value>>) -> Result<Identity, Refusal> {
    let unauthorized = || {
        Refusal::new(
            ErrorCode::Unauthorized,
            "no verified user: send Authorization: Bearer <token>",
        )
    };
    let fields = fields.ok_or_else(unauthorized)?;
    let text = |key: &str| fields.get(key).and_then(serde_json::Value::as_str);
    let user = text(USER_ID)
        .and_then(|u| UserId::parse(u).ok())
        .ok_or_else(unauthorized)?;
    let name = text(USER_NAME)
        .and_then(|n| DisplayName::parse(n).ok())
        .or_else(|| DisplayName::parse(user.as_str()).ok())
        .ok_or_else(unauthorized)?;
    Ok(Identity {
        user,
        name,
        expires_at: None,
    })
}

fn into_response(answer: HttpResponse) -> Response<Body> {
    let body = if answer.body.is_empty() {
        Body::Empty
    } else {
        Body::Text(answer.body)
    };
    let mut response = Response::new(body);
    *response.status_mut() = lambda_http::http::StatusCode::from_u16(answer.status)
        .unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    if answer.status != 204 {
        response.headers_mut().insert(
            lambda_http::http::header::CONTENT_TYPE,
            lambda_http::http::HeaderValue::from_static(answer.content_type),
        );
    }
    response
}

/// http-api as deployed, on DynamoDB (a conversation's members remembered once read) and Kafka.
pub type Deployed = HttpApi<Remembered<DynamoStore>, KafkaPublisher, ConnectionsApi>;

/// The one place http-api is wired: Lambda's `main.rs` and the local runtime both build it here.
pub async fn build(deps: Deps) -> Result<Deployed, ConfigError> {
    Ok(HttpApi {
        poster: deps.connections_api()?,
        rules: deps.rules()?,
        store: Remembered::new(deps.store),
        publisher: deps.publisher,
        topics: deps.topics,
    })
}

impl HttpFunction for Deployed {
    fn invoke(&self, request: Request) -> impl Future<Output = Response<Body>> + Send {
        HttpApi::invoke(self, request)
    }
}
