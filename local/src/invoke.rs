//! `make invoke FN=<function> EVENT=<file>`: one function, one sample event, through the same
//! in-process wiring the runtime uses; prints the function's response.

use std::path::Path;

use aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerV2Request, ApiGatewayV2httpRequest, ApiGatewayWebsocketProxyRequest,
};
use lambda_http::request::LambdaRequest;
use relaychat_schema::MskEvent;

use relaychat_adapters::Deps;

use crate::functions::{authorizer_function, http_function, kafka_function, websocket_function};

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
    if let Some(f) = http_function(function, deps).await? {
        let event: ApiGatewayV2httpRequest =
            serde_json::from_str(&text).map_err(|e| InvokeError::Shape(name, "API Gateway HTTP (payload 2.0)", e))?;
        let response = f.invoke_http(LambdaRequest::ApiGatewayV2(event).into()).await;
        let body = match response.body() {
            lambda_http::Body::Text(text) => serde_json::from_str(text).unwrap_or_else(|_| text.as_str().into()),
            lambda_http::Body::Binary(bytes) => String::from_utf8_lossy(bytes).into(),
            _ => serde_json::Value::Null,
        };
        return Ok(serde_json::json!({ "statusCode": response.status().as_u16(), "body": body }));
    }
    if let Some(f) = authorizer_function(function, deps).await? {
        let event: ApiGatewayV2CustomAuthorizerV2Request = serde_json::from_str(&text)
            .map_err(|e| InvokeError::Shape(name, "HTTP API authorizer (payload 2.0)", e))?;
        return Ok(serde_json::to_value(f.invoke_authorizer(&event).await).unwrap_or_default());
    }
    Err(InvokeError::UnknownFunction(function.to_owned()))
}
