//! API Gateway WebSocket events (`$connect`, `$disconnect`, message routes) and responses.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;

use crate::{ConnectionId, SchemaError};

/// The connection the event is about.
pub fn connection_id(request: &ApiGatewayWebsocketProxyRequest) -> Result<ConnectionId, SchemaError> {
    let id = request.request_context.connection_id.clone().unwrap_or_default();
    ConnectionId::parse(id)
}

/// A query string parameter of the `$connect` request.
pub fn query_parameter<'a>(request: &'a ApiGatewayWebsocketProxyRequest, name: &str) -> Option<&'a str> {
    request.query_string_parameters.first(name)
}

/// The message body as text (API Gateway base64-encodes binary frames).
pub fn body_text(request: &ApiGatewayWebsocketProxyRequest) -> Option<String> {
    use base64::Engine as _;
    let body = request.body.as_ref()?;
    if request.is_base64_encoded {
        let bytes = base64::engine::general_purpose::STANDARD.decode(body).ok()?;
        String::from_utf8(bytes).ok()
    } else {
        Some(body.clone())
    }
}

/// A response; with a route response configured, API Gateway sends `body` to the client.
pub fn response(status: i64, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.body = body.map(Body::Text);
    response
}
