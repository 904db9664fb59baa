//! http-authorizer: the HTTP API's Lambda authorizer (payload 2.0, simple responses). It verifies
//! `Authorization: Bearer <token>` with ws-connect's verifier, so one token opens a socket and
//! calls the API, and hands the user to http-api in its context. API Gateway caches the answer by
//! the header for the template's `AuthorizerResultTtlInSeconds`.

use aws_lambda_events::apigw::{ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request};
use relaychat_adapters::auth::JwtAuthenticator;
use relaychat_adapters::{ConfigError, Deps};
use relaychat_core::function::AuthorizerFunction;
use relaychat_core::ports::{AuthError, Authenticator};
use serde_json::json;
use tracing::info;

/// The function's name in the template and its logs.
pub const NAME: &str = "http-authorizer";

pub struct HttpAuthorizer<A> {
    pub auth: A,
}

impl<A: Authenticator> HttpAuthorizer<A> {
    pub fn authorize(
        &self,
        request: &ApiGatewayV2CustomAuthorizerV2Request,
    ) -> ApiGatewayV2CustomAuthorizerSimpleResponse {
        let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
        match bearer(request).map(|token| self.auth.verify(token)) {
            Some(Ok(identity)) => {
                response.is_authorized = true;
                response.context = json!({
                    "userId": identity.user.as_str(),
                    "name": identity.name.as_str(),
                });
            }
            Some(Err(e)) => info!(reason = %relaychat_core::chain(&e), "request refused"),
            None => info!(reason = %AuthError::Missing, "request refused"),
        }
        response
    }
}

/// The token of `Authorization: Bearer <token>`: the identity source API Gateway passes, else
/// the header itself.
fn bearer(request: &ApiGatewayV2CustomAuthorizerV2Request) -> Option<&str> {
    let header = request
        .identity_source
        .as_ref()
        .and_then(|sources| sources.first())
        .map(String::as_str)
        .or_else(|| request.headers.get("authorization").and_then(|v| v.to_str().ok()))?;
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// http-authorizer as deployed: the token verifier of the environment.
pub type Deployed = HttpAuthorizer<JwtAuthenticator>;

/// The one place http-authorizer is wired: Lambda's `main.rs` and the local runtime both build it here.
pub async fn build(deps: Deps) -> Result<Deployed, ConfigError> {
    Ok(HttpAuthorizer {
        auth: deps.authenticator().await?,
    })
}

impl AuthorizerFunction for Deployed {
    fn invoke(
        &self,
        request: &ApiGatewayV2CustomAuthorizerV2Request,
    ) -> impl Future<Output = ApiGatewayV2CustomAuthorizerSimpleResponse> + Send {
        std::future::ready(self.authorize(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relaychat_core::memory::user;
    use relaychat_core::ports::Identity;
    use relaychat_schema::DisplayName;

    /// Accepts the one token "good" as alice.
    struct OneToken;

    impl Authenticator for OneToken {
        fn verify(&self, token: &str) -> Result<Identity, AuthError> {
            match token {
                "good" => Ok(Identity {
                    user: user("alice"),
                    name: DisplayName::parse("Alice").expect("name"),
                    expires_at: None,
                }),
                "" => Err(AuthError::Missing),
                _ => Err(AuthError::Invalid("bad signature".into())),
            }
        }
    }

    fn request(authorization: Option<&str>) -> ApiGatewayV2CustomAuthorizerV2Request {
        let mut event = json!({
            "version": "2.0",
            "type": "REQUEST",
            "routeArn": "arn:aws:execute-api:eu-west-1:123456789012:api/$default/GET/unread",
            "routeKey": "GET /unread",
            "rawPath": "/unread",
            "rawQueryString": "",
            "headers": {},
            "requestContext": {"http": {"method": "GET", "path": "/unread", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"}}
        });
        if let Some(value) = authorization {
            event["identitySource"] = json!([value]);
            event["headers"]["authorization"] = json!(value);
        }
        serde_json::from_value(event).expect("an authorizer event")
    }

    #[test]
    fn a_good_bearer_token_is_authorized_with_its_user_in_the_context() {
        let response = HttpAuthorizer { auth: OneToken }.authorize(&request(Some("Bearer good")));
        assert!(response.is_authorized);
        assert_eq!(response.context, json!({"userId": "alice", "name": "Alice"}));
        let lower = HttpAuthorizer { auth: OneToken }.authorize(&request(Some("bearer  good ")));
        assert!(lower.is_authorized, "the scheme is case-insensitive");
    }

    #[test]
    fn a_bad_missing_or_non_bearer_token_is_refused_with_no_context() {
        for authorization in [
            Some("Bearer bad"),
            Some("Basic good"),
            Some("good"),
            Some("Bearer "),
            None,
        ] {
            let response = HttpAuthorizer { auth: OneToken }.authorize(&request(authorization));
            assert!(!response.is_authorized, "{authorization:?}");
            assert_eq!(response.context, serde_json::Value::Null, "{authorization:?}");
        }
    }
}
