//! A function on AWS Lambda's runtime API: tracing, the dependencies from the environment, the
//! function built once by its crate's `build`, then one invocation per event. Every `main.rs` is
//! one call to [`serve_kafka`], [`serve_websocket`], [`serve_http`] or [`serve_authorizer`].

use std::pin::Pin;

use aws_lambda_events::apigw::{ApiGatewayV2CustomAuthorizerV2Request, ApiGatewayWebsocketProxyRequest};
use lambda_http::{Body, Request, Response};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use relaychat_core::function::{AuthorizerFunction, KafkaFunction, WebSocketFunction};
use relaychat_schema::MskEvent;

use crate::{ConfigError, Deps, telemetry};

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

/// What every `serve_*` does: tracing, the dependencies from the environment, the function built
/// once, then `serve` with it until the runtime stops.
fn serve_built<F, Built>(
    build: impl FnOnce(Deps) -> Built,
    serve: impl for<'f> FnOnce(&'f F) -> Pin<Box<dyn Future<Output = Result<(), Error>> + 'f>>,
) -> Result<(), Error>
where
    Built: Future<Output = Result<F, ConfigError>>,
{
    runtime()?.block_on(async move {
        telemetry::init();
        telemetry::init_metrics();
        let function = build(Deps::from_env().await?).await?;
        serve(&function).await
    })
}

/// One invocation's answer, after this invocation's metrics are written (each `serve_*`).
async fn measured<T>(answer: impl Future<Output = T>) -> Result<T, Error> {
    let answer = answer.await;
    telemetry::flush_metrics();
    Ok(answer)
}

/// Serves a function behind an event-source mapping.
pub fn serve_kafka<F, Built>(build: impl FnOnce(Deps) -> Built) -> Result<(), Error>
where
    F: KafkaFunction,
    Built: Future<Output = Result<F, ConfigError>>,
{
    serve_built(build, |function: &F| {
        Box::pin(run(service_fn(move |event: LambdaEvent<MskEvent>| async move {
            measured(function.invoke(&event.payload)).await
        })))
    })
}

/// Serves a function behind WebSocket API routes.
pub fn serve_websocket<F, Built>(build: impl FnOnce(Deps) -> Built) -> Result<(), Error>
where
    F: WebSocketFunction,
    Built: Future<Output = Result<F, ConfigError>>,
{
    serve_built(build, |function: &F| {
        Box::pin(run(service_fn(
            move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
                measured(function.invoke(&event.payload)).await
            },
        )))
    })
}

/// A function behind HTTP API routes: `lambda_http` turns API Gateway's event into the request
/// and the response back into API Gateway's answer, on Lambda and in the local runtime alike.
pub trait HttpFunction: Send + Sync {
    fn invoke(&self, request: Request) -> impl Future<Output = Response<Body>> + Send;
}

/// Serves a function behind HTTP API routes.
pub fn serve_http<F, Built>(build: impl FnOnce(Deps) -> Built) -> Result<(), Error>
where
    F: HttpFunction,
    Built: Future<Output = Result<F, ConfigError>>,
{
    serve_built(build, |function: &F| {
        Box::pin(lambda_http::run(service_fn(move |request: Request| async move {
            measured(function.invoke(request)).await
        })))
    })
}

/// Serves an HTTP API's Lambda authorizer.
pub fn serve_authorizer<F, Built>(build: impl FnOnce(Deps) -> Built) -> Result<(), Error>
where
    F: AuthorizerFunction,
    Built: Future<Output = Result<F, ConfigError>>,
{
    serve_built(build, |function: &F| {
        Box::pin(run(service_fn(
            move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| async move {
                measured(function.invoke(&event.payload)).await
            },
        )))
    })
}
