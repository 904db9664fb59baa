//! `make invoke FN=<function> EVENT=<file>`: one function, one sample event, through the same
//! in-process wiring the runtime uses; prints the function's response.

use std::path::Path;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use relaychat_schema::MskEvent;

use relaychat_adapters::Deps;

use crate::functions::{kafka_function, websocket_function};

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("could not read {0}")]
    Read(String, #[source] std::io::Error),
    #[error("{0} is not a {1} event")]
    Shape(String, &'static str, #[source] serde_json::Error),
    #[error("no function named {0}")]
    UnknownFunction(String),
    #[error(transparent)]
    Config(#[from] relaychat_adapters::ConfigError),
}

pub async fn invoke(function: &str, event_file: &Path, deps: &Deps) -> Result<serde_json::Value, InvokeError> {
    let text =
        std::fs::read_to_string(event_file).map_err(|e| InvokeError::Read(event_file.display().to_string(), e))?;
    let name = event_file.display().to_string();
    if let Some(f) = kafka_function(function, deps).await? {
        let event: MskEvent = serde_json::from_str(&text).map_err(|e| InvokeError::Shape(name, "Kafka", e))?;
        return Ok(serde_json::to_value(f.invoke_batch(&event).await).unwrap_or_default());
    }
    if let Some(f) = websocket_function(function, deps).await? {
        let event: ApiGatewayWebsocketProxyRequest =
            serde_json::from_str(&text).map_err(|e| InvokeError::Shape(name, "API Gateway WebSocket", e))?;
        return Ok(serde_json::to_value(f.invoke_request(&event).await).unwrap_or_default());
    }
    Err(InvokeError::UnknownFunction(function.to_owned()))
}
