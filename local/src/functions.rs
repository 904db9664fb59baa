//! The functions, in-process: each built by its own crate's `build` (the very wiring Lambda's
//! `main.rs` uses) from the local servers' dependencies. Adding a function adds one line here.

use std::future::Future;
use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayProxyResponse, ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
    ApiGatewayWebsocketProxyRequest,
};
use futures::future::BoxFuture;
use lambda_http::{Body, Request, Response};
use relaychat_adapters::lambda::HttpFunction;
use relaychat_adapters::{ConfigError, Deps};
use relaychat_core::function::{AuthorizerFunction, KafkaFunction, WebSocketFunction};
use relaychat_schema::KafkaBatchResponse;
use relaychat_schema::MskEvent;

/// A function behind an event-source mapping, as the mappings share it.
pub trait InvokeKafka: Send + Sync {
    fn invoke_batch<'a>(&'a self, event: &'a MskEvent) -> BoxFuture<'a, KafkaBatchResponse>;
}

impl<F: KafkaFunction> InvokeKafka for F {
    fn invoke_batch<'a>(&'a self, event: &'a MskEvent) -> BoxFuture<'a, KafkaBatchResponse> {
        Box::pin(self.invoke(event))
    }
}

/// A function behind WebSocket routes, as the routes share it.
pub trait InvokeWebSocket: Send + Sync {
    fn invoke_request<'a>(
        &'a self,
        request: &'a ApiGatewayWebsocketProxyRequest,
    ) -> BoxFuture<'a, ApiGatewayProxyResponse>;
}

impl<F: WebSocketFunction> InvokeWebSocket for F {
    fn invoke_request<'a>(
        &'a self,
        request: &'a ApiGatewayWebsocketProxyRequest,
    ) -> BoxFuture<'a, ApiGatewayProxyResponse> {
        Box::pin(self.invoke(request))
    }
}

/// A function behind HTTP API routes, as the routes share it.
pub trait InvokeHttp: Send + Sync {
    fn invoke_http(&self, request: Request) -> BoxFuture<'_, Response<Body>>;
}

impl<F: HttpFunction> InvokeHttp for F {
    fn invoke_http(&self, request: Request) -> BoxFuture<'_, Response<Body>> {
        Box::pin(self.invoke(request))
    }
}

/// An HTTP API's Lambda authorizer.
pub trait InvokeAuthorizer: Send + Sync {
    fn invoke_authorizer<'a>(
        &'a self,
        request: &'a ApiGatewayV2CustomAuthorizerV2Request,
    ) -> BoxFuture<'a, ApiGatewayV2CustomAuthorizerSimpleResponse>;
}

impl<F: AuthorizerFunction> InvokeAuthorizer for F {
    fn invoke_authorizer<'a>(
        &'a self,
        request: &'a ApiGatewayV2CustomAuthorizerV2Request,
    ) -> BoxFuture<'a, ApiGatewayV2CustomAuthorizerSimpleResponse> {
        Box::pin(self.invoke(request))
    }
}

pub type SharedKafkaFunction = Arc<dyn InvokeKafka>;
pub type SharedWebSocketFunction = Arc<dyn InvokeWebSocket>;
pub type SharedHttpFunction = Arc<dyn InvokeHttp>;
pub type SharedAuthorizer = Arc<dyn InvokeAuthorizer>;

async fn kafka<F: KafkaFunction + 'static>(
    built: impl Future<Output = Result<F, ConfigError>>,
) -> Result<Option<SharedKafkaFunction>, ConfigError> {
    Ok(Some(Arc::new(built.await?)))
}

async fn websocket<F: WebSocketFunction + 'static>(
    built: impl Future<Output = Result<F, ConfigError>>,
) -> Result<Option<SharedWebSocketFunction>, ConfigError> {
    Ok(Some(Arc::new(built.await?)))
}

/// The Kafka function of this name, or `None` if there is none.
pub async fn kafka_function(name: &str, deps: &Deps) -> Result<Option<SharedKafkaFunction>, ConfigError> {
    let deps = deps.clone();
    match name {
        persist_message::NAME => kafka(persist_message::build(deps)).await,
        deliver_message::NAME => kafka(deliver_message::build(deps)).await,
        update_status::NAME => kafka(update_status::build(deps)).await,
        relay_typing::NAME => kafka(relay_typing::build(deps)).await,
        update_presence::NAME => kafka(update_presence::build(deps)).await,
        push_notification::NAME => kafka(push_notification::build(deps)).await,
        analytics::NAME => kafka(analytics::build(deps)).await,
        _ => Ok(None),
    }
}

/// The WebSocket function of this name, or `None` if there is none.
pub async fn websocket_function(name: &str, deps: &Deps) -> Result<Option<SharedWebSocketFunction>, ConfigError> {
    let deps = deps.clone();
    match name {
        ws_connect::NAME => websocket(ws_connect::build(deps)).await,
        ws_disconnect::NAME => websocket(ws_disconnect::build(deps)).await,
        ws_message::NAME => websocket(ws_message::build(deps)).await,
        _ => Ok(None),
    }
}

/// The HTTP API function of this name, or `None` if there is none.
pub async fn http_function(name: &str, deps: &Deps) -> Result<Option<SharedHttpFunction>, ConfigError> {
    match name {
        http_api::NAME => Ok(Some(Arc::new(http_api::build(deps.clone()).await?))),
        _ => Ok(None),
    }
}

/// The HTTP API authorizer of this name, or `None` if there is none.
pub async fn authorizer_function(name: &str, deps: &Deps) -> Result<Option<SharedAuthorizer>, ConfigError> {
    match name {
        http_authorizer::NAME => Ok(Some(Arc::new(http_authorizer::build(deps.clone()).await?))),
        _ => Ok(None),
    }
}
