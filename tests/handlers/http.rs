//! The HTTP API's functions on their payload-2.0 samples (events/http-*.json), through
//! `lambda_http`'s own conversion, against DynamoDB Local and the broker.

use aws_lambda_events::apigw::{ApiGatewayV2CustomAuthorizerV2Request, ApiGatewayV2httpRequest};
use chrono::Utc;
use http_api::HttpApi;
use http_authorizer::HttpAuthorizer;
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Response};
use relaychat_adapters::auth::{DEV_SECRET, JwtAuthenticator, TokenRules};
use relaychat_adapters::connections_api::ConnectionsApi;
use relaychat_core::ports::{Conversation, ConversationStore};
use relaychat_schema::{ConversationId, Topics, UserId};
use relaychat_testkit::{connections_api, dynamo_store, read_topic};
use serde_json::{Value, json};

use crate::support::*;

fn http_sample(name: &str) -> ApiGatewayV2httpRequest {
    let text = std::fs::read_to_string(events_dir().join(name)).expect("sample event");
    serde_json::from_str(&text).expect("a payload 2.0 event")
}

fn status_and_body(response: &Response<Body>) -> (u16, Value) {
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).expect("JSON"),
        Body::Empty => Value::Null,
        other => panic!("unexpected body {other:?}"),
    };
    (response.status().as_u16(), body)
}

async fn api(
    topics: &Topics,
) -> HttpApi<relaychat_adapters::dynamo::DynamoStore, relaychat_adapters::kafka::KafkaPublisher, ConnectionsApi> {
    let store = dynamo_store().await;
    let conversation = Conversation {
        id: ConversationId::parse(DIRECT).unwrap(),
        title: None,
        members: vec![UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap()],
        created_by: UserId::parse("alice").unwrap(),
        created_at: Utc::now(),
        large: None,
    };
    store.create_conversation(&conversation, None).await.unwrap();
    HttpApi {
        store,
        publisher: publisher(),
        poster: connections_api().await.1,
        topics: topics.clone(),
        rules: Default::default(),
    }
}

#[tokio::test]
async fn the_authorizer_lets_the_sample_token_in_as_alice_and_keeps_a_forged_one_out() {
    let authorizer = HttpAuthorizer {
        auth: JwtAuthenticator::new(DEV_SECRET.as_bytes(), &TokenRules::default()).unwrap(),
    };
    let text = std::fs::read_to_string(events_dir().join("http-authorizer.json")).unwrap();
    let event: ApiGatewayV2CustomAuthorizerV2Request = serde_json::from_str(&text).unwrap();
    let answer = authorizer.authorize(&event);
    assert!(answer.is_authorized);
    assert_eq!(answer.context, json!({"userId": "alice", "name": "Alice"}));

    let mut forged: Value = serde_json::from_str(&text).unwrap();
    let token = forged["identitySource"][0].as_str().unwrap().to_owned();
    forged["identitySource"][0] = json!(format!("{}x", token));
    let answer = authorizer.authorize(&serde_json::from_value(forged).unwrap());
    assert!(!answer.is_authorized);
}

#[tokio::test]
async fn a_sample_send_is_acked_after_the_broker_has_it_and_history_and_unread_answer() {
    let topics = fresh_topics().await;
    let api = api(&topics).await;

    let sent = api
        .invoke(LambdaRequest::ApiGatewayV2(http_sample("http-api-send-message.json")).into())
        .await;
    let (status, ack) = status_and_body(&sent);
    assert_eq!(status, 202, "{ack}");
    assert_eq!(
        (ack["status"].as_str(), ack["clientMessageId"].as_str()),
        (Some("SENT"), Some("bot-7"))
    );
    let published = read_topic(&topics.chat_messages, 1, WAIT);
    assert_eq!(published.len(), 1, "on the broker before the 202");
    let message: Value = serde_json::from_slice(&published[0].value).unwrap();
    assert_eq!(
        (
            message["senderId"].as_str(),
            message["content"].as_str(),
            message["clientMessageId"].as_str()
        ),
        (Some("alice"), Some("Hi Bob, from the bot"), Some("bot-7"))
    );

    let (status, history) = status_and_body(
        &api.invoke(LambdaRequest::ApiGatewayV2(http_sample("http-api-history.json")).into())
            .await,
    );
    assert_eq!((status, history["conversationId"].as_str()), (200, Some(DIRECT)));
    let (status, unread) = status_and_body(
        &api.invoke(LambdaRequest::ApiGatewayV2(http_sample("http-api-unread.json")).into())
            .await,
    );
    assert_eq!((status, unread), (200, json!({"total": 0, "conversations": []})));
}

#[tokio::test]
async fn without_the_authorizers_user_or_a_known_route_nothing_is_done() {
    let topics = fresh_topics().await;
    let api = api(&topics).await;
    let mut anonymous = serde_json::to_value(http_sample("http-api-send-message.json")).unwrap();
    anonymous["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let (status, problem) = status_and_body(
        &api.invoke(LambdaRequest::ApiGatewayV2(serde_json::from_value(anonymous).unwrap()).into())
            .await,
    );
    assert_eq!((status, problem["code"].as_str()), (401, Some("unauthorized")));

    let mut unknown = serde_json::to_value(http_sample("http-api-unread.json")).unwrap();
    unknown["routeKey"] = json!("GET /secrets");
    unknown["requestContext"]["routeKey"] = json!("GET /secrets");
    let (status, problem) = status_and_body(
        &api.invoke(LambdaRequest::ApiGatewayV2(serde_json::from_value(unknown).unwrap()).into())
            .await,
    );
    assert_eq!((status, problem["code"].as_str()), (404, Some("unknown_action")));
    assert!(
        read_topic(&topics.chat_messages, 1, std::time::Duration::from_secs(2)).is_empty(),
        "nothing published"
    );
}
