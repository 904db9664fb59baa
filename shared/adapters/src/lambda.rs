//! A function on AWS Lambda's runtime API: tracing, the dependencies from the environment, the
//! function built once by its crate's `build`, then one invocation per event. Every `main.rs` is
//! one call to [`serve_kafka`] or [`serve_websocket`].

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use relaychat_core::function::{KafkaFunction, WebSocketFunction};
use relaychat_schema::MskEvent;

use crate::{ConfigError, Deps, telemetry};

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

/// Serves a function behind an event-source mapping.
pub fn serve_kafka<F, Built>(build: impl FnOnce(Deps) -> Built) -> Result<(), Error>
where
    F: KafkaFunction,
    Built: Future<Output = Result<F, ConfigError>>,
{
    runtime()?.block_on(async move {
        telemetry::init();
        let function = build(Deps::from_env().await?).await?;
        let function = &function;
        run(service_fn(move |event: LambdaEvent<MskEvent>| async move {
            Ok::<_, Error>(function.invoke(&event.payload).await)
        }))
        .await
    })
}

/// Serves a function behind WebSocket API routes.
pub fn serve_websocket<F, Built>(build: impl FnOnce(Deps) -> Built) -> Result<(), Error>
where
    F: WebSocketFunction,
    Built: Future<Output = Result<F, ConfigError>>,
{
    runtime()?.block_on(async move {
        telemetry::init();
        let function = build(Deps::from_env().await?).await?;
        let function = &function;
        run(service_fn(
            move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
                Ok::<_, Error>(function.invoke(&event.payload).await)
            },
        ))
        .await
    })
}
