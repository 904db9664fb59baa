//! The WebSocket functions on their API Gateway-shaped samples, against DynamoDB Local and the
//! broker: connect, every action, refusals, an unavailable broker, disconnect.

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use chrono::Utc;
use relaychat_adapters::auth::{DEV_SECRET, JwtAuthenticator, TokenRules};
use relaychat_adapters::dynamo::DynamoStore;
use relaychat_adapters::kafka::KafkaPublisher;
use relaychat_core::ports::{ConnectionRegistry, Conversation, ConversationStore, DeviceStore};
use relaychat_schema::{ConnectionId, ConversationId, Topics, UserId};
use relaychat_testkit::{connections_api, dynamo_store, read_topic};
use ws_connect::WsConnect;
use ws_disconnect::WsDisconnect;
use ws_message::WsMessage;

use crate::support::*;

const ALICE_CONN: &str = "L0SM9cOFvHcCIhw=";

fn body(r: &ApiGatewayProxyResponse) -> Option<serde_json::Value> {
    match &r.body {
        Some(Body::Text(t)) => Some(serde_json::from_str(t).expect("reply is JSON")),
        None => None,
        other => panic!("unexpected body {other:?}"),
    }
}

async fn connected_alice(store: &DynamoStore, topics: &Topics) -> ApiGatewayProxyResponse {
    let connect = WsConnect {
        auth: JwtAuthenticator::new(DEV_SECRET.as_bytes(), &TokenRules::default()).unwrap(),
        registry: store.clone(),
        publisher: publisher(),
        topics: topics.clone(),
    };
    connect.invoke(&ws_sample("ws-connect.json")).await
}

async fn direct_conversation(store: &DynamoStore) {
    let conversation = Conversation {
        id: ConversationId::parse(DIRECT).unwrap(),
        title: None,
        members: vec![UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap()],
        created_by: UserId::parse("alice").unwrap(),
        created_at: Utc::now(),
        large: None,
    };
    store.create_conversation(&conversation, None).await.unwrap();
}

#[tokio::test]
async fn connect_registers_a_valid_token_and_refuses_a_forged_one() {
    let store = dynamo_store().await;
    let topics = fresh_topics().await;
    let connection = ConnectionId::parse(ALICE_CONN).unwrap();
    let connect = WsConnect {
        auth: JwtAuthenticator::new(DEV_SECRET.as_bytes(), &TokenRules::default()).unwrap(),
        registry: store.clone(),
        publisher: publisher(),
        topics: topics.clone(),
    };

    let refused = connect.invoke(&ws_sample("ws-connect-bad-token.json")).await;
    assert_eq!(refused.status_code, 401);
    assert_eq!(
        store.identity_of(&connection).await.unwrap(),
        None,
        "a refused connect stores nothing"
    );

    assert_eq!(connect.invoke(&ws_sample("ws-connect.json")).await.status_code, 200);
    let identity = store.identity_of(&connection).await.unwrap().unwrap();
    assert_eq!((identity.user.as_str(), identity.name.as_str()), ("alice", "Alice"));
    let analytics = read_topic(&topics.analytics_events, 1, WAIT);
    assert_eq!(analytics[0].json()["kind"], "connected");

    let disconnect = WsDisconnect {
        registry: store.clone(),
        publisher: publisher(),
        topics: topics.clone(),
    };
    for _ in 0..2 {
        assert_eq!(
            disconnect.invoke(&ws_sample("ws-disconnect.json")).await.status_code,
            200,
            "safe to run twice"
        );
    }
    assert_eq!(store.identity_of(&connection).await.unwrap(), None);
}

#[tokio::test]
async fn every_action_sample_gets_its_reply_and_its_record() {
    let store = dynamo_store().await;
    let topics = fresh_topics().await;
    assert_eq!(connected_alice(&store, &topics).await.status_code, 200);
    direct_conversation(&store).await;
    let function = WsMessage {
        store: store.clone(),
        publisher: publisher(),
        poster: connections_api().await.1,
        topics: topics.clone(),
        rules: Default::default(),
    };
    let run = |name: &'static str| {
        let function = &function;
        async move {
            let response = function.invoke(&ws_sample(name)).await;
            assert_eq!(response.status_code, 200, "{name}");
            body(&response)
        }
    };

    let created = run("ws-message-create-conversation.json").await.unwrap();
    assert_eq!(created["type"], "conversation");
    assert_eq!(created["members"], serde_json::json!(["alice", "bob", "carol"]));
    assert_eq!(created["title"], "Team lunch");

    let ack = run("ws-message-send-message.json").await.unwrap();
    assert_eq!(
        (ack["type"].as_str(), ack["status"].as_str()),
        (Some("ack"), Some("SENT"))
    );
    assert_eq!(
        (ack["clientMessageId"].as_str(), ack["conversationId"].as_str()),
        (Some("web-42"), Some(DIRECT))
    );
    let sent = read_topic(&topics.chat_messages, 1, WAIT);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].key.as_deref(), Some(DIRECT.as_bytes()));
    assert_eq!(sent[0].json()["messageId"], ack["messageId"]);
    assert_eq!(
        sent[0].json()["senderId"],
        "alice",
        "the sender is the connection's user"
    );

    assert_eq!(run("ws-message-typing.json").await, None);
    assert_eq!(read_topic(&topics.typing_events, 1, WAIT).len(), 1);
    assert_eq!(run("ws-message-mark-read.json").await, None);
    let read = read_topic(&topics.message_status_events, 1, WAIT);
    assert_eq!(
        (read[0].key.as_deref(), read[0].json()["status"].as_str()),
        (Some(&b"alice"[..]), Some("READ"))
    );

    let list = run("ws-message-list-conversations.json").await.unwrap();
    assert_eq!(list["type"], "conversations");
    let ids: Vec<&str> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversationId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&DIRECT));

    let history = run("ws-message-history.json").await.unwrap();
    assert_eq!(
        (history["type"].as_str(), history["conversationId"].as_str()),
        (Some("history"), Some(DIRECT))
    );
    assert!(
        history["messages"].as_array().unwrap().is_empty(),
        "nothing persisted yet in this test"
    );

    assert_eq!(
        run("ws-message-register-device.json").await.unwrap()["type"],
        "deviceRegistered"
    );
    let devices = store.devices_of(&UserId::parse("alice").unwrap()).await.unwrap();
    assert_eq!(devices[0].token.as_str(), "fcm-device-token-alice-pixel");

    let invalid = run("ws-message-invalid-json.json").await.unwrap();
    assert_eq!(
        (invalid["type"].as_str(), invalid["code"].as_str()),
        (Some("error"), Some("invalid_json"))
    );
}

#[tokio::test]
async fn an_unregistered_connection_is_told_to_reconnect() {
    let store = dynamo_store().await;
    let function = WsMessage {
        store: store.clone(),
        publisher: publisher(),
        poster: connections_api().await.1,
        topics: fresh_topics().await,
        rules: Default::default(),
    };
    let reply = body(&function.invoke(&ws_sample("ws-message-list-conversations.json")).await).unwrap();
    assert_eq!(reply["code"], "unauthorized");
}

#[tokio::test]
async fn when_the_broker_is_down_the_sender_gets_unavailable_and_can_go_on() {
    let store = dynamo_store().await;
    let topics = fresh_topics().await;
    assert_eq!(connected_alice(&store, &topics).await.status_code, 200);
    direct_conversation(&store).await;
    let settings = relaychat_testkit::unreachable_kafka();
    let function = WsMessage {
        store: store.clone(),
        publisher: KafkaPublisher::new(&settings).unwrap(),
        poster: connections_api().await.1,
        topics,
        rules: Default::default(),
    };
    let refused = body(&function.invoke(&ws_sample("ws-message-send-message.json")).await).unwrap();
    assert_eq!(
        (
            refused["type"].as_str(),
            refused["code"].as_str(),
            refused["clientMessageId"].as_str()
        ),
        (Some("error"), Some("unavailable"), Some("web-42"))
    );
    let list = body(&function.invoke(&ws_sample("ws-message-list-conversations.json")).await).unwrap();
    assert_eq!(list["type"], "conversations", "the connection stays usable");
}

#[tokio::test]
async fn a_messages_trace_runs_from_the_socket_through_deliver_message_to_its_push() {
    use relaychat_core::trace::Trace;
    // GIVEN alice connected, and bob offline with a phone
    let store = dynamo_store().await;
    let topics = fresh_topics().await;
    assert_eq!(connected_alice(&store, &topics).await.status_code, 200);
    direct_conversation(&store).await;
    let bob = UserId::parse("bob").unwrap();
    store
        .register_device(&relaychat_core::ports::Device {
            user: bob.clone(),
            token: relaychat_schema::DeviceToken::parse("bob-phone").unwrap(),
            platform: "fcm".into(),
        })
        .await
        .unwrap();
    let poster = connections_api().await.1;
    // WHEN alice sends (ws-message), deliver-message reads it and push-notification the push
    let ws = WsMessage {
        store: store.clone(),
        publisher: publisher(),
        poster: poster.clone(),
        topics: topics.clone(),
        rules: Default::default(),
    };
    assert_eq!(
        ws.invoke(&ws_sample("ws-message-send-message.json")).await.status_code,
        200
    );
    let chat = read_topic(&topics.chat_messages, 1, WAIT);
    let deliver = deliver_message::DeliverMessage {
        members: store.clone(),
        directory: store.clone(),
        poster,
        publisher: publisher(),
        dead_letters: dead_letters("deliver-message").await,
        topics: topics.clone(),
    };
    assert!(
        deliver
            .invoke(&relaychat_testkit::event_from(&topics.chat_messages, &chat))
            .await
            .batch_item_failures
            .is_empty()
    );
    let pushes = read_topic(&topics.notifications, 1, WAIT);
    let (fcm, google) = relaychat_testkit::fcm::stand_in().await;
    let push = push_notification::PushNotification {
        store: store.clone(),
        push: fcm,
        dead_letters: dead_letters("push-notification").await,
    };
    assert!(
        push.invoke(&relaychat_testkit::event_from(&topics.notifications, &pushes))
            .await
            .batch_item_failures
            .is_empty()
    );
    // THEN one trace: minted by ws-message, continued by deliver-message with a span of its own,
    // and by push-notification with another, which FCM's request carries
    let header = |h: Option<&[u8]>| Trace::parse(std::str::from_utf8(h.expect("a traceparent")).unwrap()).expect("W3C");
    let at_edge = header(chat[0].header("traceparent"));
    let at_delivery = header(pushes[0].header("traceparent"));
    let at_push = Trace::parse(&google.lock().unwrap().traceparents[0]).expect("FCM got a traceparent");
    assert_eq!(
        (at_delivery.trace_id, at_push.trace_id),
        (at_edge.trace_id, at_edge.trace_id),
        "one trace"
    );
    let spans = [at_edge.span_id, at_delivery.span_id, at_push.span_id];
    assert!(
        spans[0] != spans[1] && spans[1] != spans[2] && spans[0] != spans[2],
        "a span each: {spans:x?}"
    );
}
