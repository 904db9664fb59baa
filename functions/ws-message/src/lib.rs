//! ws-message (`$default` and every action route): parses the body into a typed command and
//! performs it as the connection's user. The reply (or an `error` frame) is the response body,
//! which API Gateway sends back on the connection.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use relaychat_adapters::connections_api::ConnectionsApi;
use relaychat_adapters::dynamo::DynamoStore;
use relaychat_adapters::kafka::KafkaPublisher;
use relaychat_adapters::{ConfigError, Deps};
use relaychat_core::actions::{Front, Rules, Sender, refusal_for};
use relaychat_core::function::WebSocketFunction;
use relaychat_core::ports::{
    AnalyticsStore, ConnectionDirectory, ConnectionRegistry, ConversationStore, DeviceStore, FramePoster,
    PresenceStore, Publisher,
};
use relaychat_core::remembered::Remembered;
use relaychat_core::trace::Trace;
use relaychat_schema::Topics;
use relaychat_schema::gateway::{body_text, connection_id, response};
use relaychat_schema::protocol::{Command, ErrorCode, Refusal, Reply};
use tracing::{Instrument, info_span, warn};

/// The function's name in the template and its logs.
pub const NAME: &str = "ws-message";

/// How long an action may take: inside the function's 10 s timeout, with room to answer.
pub const REQUEST_BUDGET: std::time::Duration = std::time::Duration::from_secs(8);

pub struct WsMessage<S, P, F> {
    pub store: S,
    pub publisher: P,
    /// `@connections`: a new conversation is announced to its members.
    pub poster: F,
    pub topics: Topics,
    pub rules: Rules,
}

impl<S, P, F> WsMessage<S, P, F>
where
    S: ConversationStore + ConnectionRegistry + DeviceStore + ConnectionDirectory + PresenceStore + AnalyticsStore,
    P: Publisher,
    F: FramePoster,
{
    pub async fn invoke(&self, request: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
        let body = body_text(request).unwrap_or_default();
        let (request_id, command) = Command::parse_request(&body);
        // The client hears `unavailable` from us rather than nothing from a killed invocation.
        let reply = match tokio::time::timeout(REQUEST_BUDGET, self.reply(request, command)).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(refusal)) => Some(refusal.to_reply()),
            Err(_) => {
                warn!(budget_ms = REQUEST_BUDGET.as_millis(), "action ran out of time");
                Some(Refusal::new(ErrorCode::Unavailable, "the service is busy; try again").to_reply())
            }
        };
        // Refusals are answered too: a 200 whose body is the error frame.
        response(200, reply.map(|r| r.to_json_for(request_id.as_ref())))
    }

    async fn reply(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
        command: Result<Command, Refusal>,
    ) -> Result<Option<Reply>, Refusal> {
        let connection = connection_id(request)?;
        let identity = self
            .store
            .identity_of(&connection)
            .await
            .map_err(|e| refusal_for(&e))?
            .ok_or_else(|| Refusal::new(ErrorCode::Unauthorized, "this connection is not registered; reconnect"))?;
        let command = command?;
        // The trace of everything this action sends starts here (the socket carries none).
        let trace = Trace::root();
        let span = info_span!(
            "action",
            function = NAME,
            action = command.action(),
            user = %identity.user,
            %connection,
            trace_id = %trace.trace_hex(),
            span_id = %trace.span_hex(),
        );
        let sender = Sender::socket(connection.clone(), identity);
        let front = Front {
            store: &self.store,
            publisher: &self.publisher,
            poster: &self.poster,
            topics: &self.topics,
            rules: &self.rules,
        };
        let result = front
            .act(&sender, command, trace, Some(&connection))
            .instrument(span)
            .await;
        if let Err(refusal) = &result {
            warn!(code = ?refusal.code, message = %refusal.message, "action refused");
        }
        result
    }
}

/// ws-message as deployed, on DynamoDB (a connection's identity and a conversation's members
/// remembered once read: they never change) and Kafka.
pub type Deployed = WsMessage<Remembered<DynamoStore>, KafkaPublisher, ConnectionsApi>;

/// The one place ws-message is wired: Lambda's `main.rs` and the local runtime both build it here.
pub async fn build(deps: Deps) -> Result<Deployed, ConfigError> {
    Ok(WsMessage {
        poster: deps.connections_api()?,
        rules: deps.rules()?,
        store: Remembered::new(deps.store),
        publisher: deps.publisher,
        topics: deps.topics,
    })
}

impl WebSocketFunction for Deployed {
    fn invoke(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
    ) -> impl Future<Output = ApiGatewayProxyResponse> + Send {
        WsMessage::invoke(self, request)
    }
}
