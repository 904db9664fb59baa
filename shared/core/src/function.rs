//! What a function is to whatever runs it (Lambda's runtime API, the local runtime, a test): a
//! value built once that takes one typed event at a time.

use aws_lambda_events::apigw::{
    ApiGatewayProxyResponse, ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
    ApiGatewayWebsocketProxyRequest,
};
use relaychat_schema::KafkaBatchResponse;
use relaychat_schema::MskEvent;

/// A function behind an event-source mapping: a batch of records in, the records to retry out.
pub trait KafkaFunction: Send + Sync {
    fn invoke(&self, event: &MskEvent) -> impl Future<Output = KafkaBatchResponse> + Send;
}

/// A function behind a WebSocket API route: one request in, the route's response out.
pub trait WebSocketFunction: Send + Sync {
    fn invoke(&self, request: &ApiGatewayWebsocketProxyRequest)
    -> impl Future<Output = ApiGatewayProxyResponse> + Send;
}

/// An HTTP API's Lambda authorizer (payload 2.0, simple responses): a request's identity source
/// in, allowed or not (with the context the integration sees) out.
pub trait AuthorizerFunction: Send + Sync {
    fn invoke(
        &self,
        request: &ApiGatewayV2CustomAuthorizerV2Request,
    ) -> impl Future<Output = ApiGatewayV2CustomAuthorizerSimpleResponse> + Send;
}
