//! The local runtime's traces over OTLP/HTTP: one message sent over the socket is one trace at
//! the collector, with each function's span the child of the one whose record it handled. The
//! collector is a stand-in that decodes OTLP's protobuf with the protocol's own types.

#[path = "../e2e/client.rs"]
#[allow(dead_code)]
mod client;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use client::{Client, start_runtime};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

type Received = Arc<Mutex<Vec<(String, Span)>>>;

/// An OTLP/HTTP collector: each span with its resource's `service.name`.
async fn collector() -> (String, Received) {
    let received: Received = Arc::default();
    let app = Router::new()
        .route(
            "/v1/traces",
            post(|State(r): State<Received>, body: Bytes| async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                for resource_spans in request.resource_spans {
                    let service = resource_spans
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                            Any::StringValue(s) => Some(s.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    for scope in resource_spans.scope_spans {
                        for span in scope.spans {
                            r.lock().unwrap().push((service.clone(), span));
                        }
                    }
                }
                "{}"
            }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(s.clone()),
            Any::IntValue(i) => Some(i.to_string()),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_is_one_trace_at_the_otlp_collector() {
    let (endpoint, received) = collector().await;
    let (layer, otlp) = relaychat_local::otlp::layer(Some(&endpoint)).expect("the exporter");
    // The layer alone (the runtime adds log lines beside it: `telemetry::init_with`).
    tracing_subscriber::registry()
        .with(layer)
        .with(tracing_subscriber::EnvFilter::new("info"))
        .init();
    let (running, _topics) = start_runtime().await;
    let mut alice = Client::connect(&running, "alice", "Alice").await;
    let mut bob = Client::connect(&running, "bob", "Bob").await;
    let conversation = alice.create_conversation(&["bob"]).await;

    // WHEN alice sends a message, bob gets it and alice hears it was delivered
    let ack = alice
        .ask(
            json!({"action": "sendMessage", "conversationId": conversation, "content": "traced"}),
            "ack",
        )
        .await;
    let message_id = ack["messageId"].as_str().unwrap().to_owned();
    bob.expect("the message", |f| {
        f["type"] == "message" && f["messageId"] == message_id.as_str()
    })
    .await;
    alice
        .expect("DELIVERED", |f| {
            f["type"] == "status" && f["messageId"] == message_id.as_str() && f["status"] == "DELIVERED"
        })
        .await;

    // THEN the collector has the message's trace: the action, then each function's record span
    let by_message = |function: &str, spans: &[(String, Span)]| -> Option<Span> {
        spans
            .iter()
            .map(|(_, s)| s)
            .find(|s| {
                attribute(s, "faas.name").as_deref() == Some(function)
                    && attribute(s, "message_id").as_deref() == Some(message_id.as_str())
            })
            .cloned()
    };
    let mut spans = Vec::new();
    for _ in 0..40 {
        otlp.flush().await;
        spans = received.lock().unwrap().clone();
        if ["persist-message", "deliver-message", "update-status"]
            .iter()
            .all(|f| by_message(f, &spans).is_some())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let action = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| {
            attribute(s, "action").as_deref() == Some("sendMessage") && attribute(s, "user").as_deref() == Some("alice")
        })
        .expect("ws-message's sendMessage span")
        .clone();
    assert_eq!(attribute(&action, "faas.name").as_deref(), Some("ws-message"));
    assert_eq!(action.kind, SpanKind::Server as i32);
    assert!(action.parent_span_id.is_empty(), "the trace starts at the socket");
    assert_eq!(action.trace_id.len(), 16);

    let persist = by_message("persist-message", &spans).expect("persist-message's span");
    let deliver = by_message("deliver-message", &spans).expect("deliver-message's span");
    let status = by_message("update-status", &spans).expect("update-status's span");
    for (child, parent, hop) in [
        (&persist, &action, "persist-message <- ws-message"),
        (&deliver, &action, "deliver-message <- ws-message"),
        (&status, &deliver, "update-status <- deliver-message (DELIVERED)"),
    ] {
        assert_eq!(child.trace_id, action.trace_id, "{hop}: one trace");
        assert_eq!(
            child.parent_span_id, parent.span_id,
            "{hop}: the parent is the producer's span"
        );
        assert_ne!(child.span_id, parent.span_id, "{hop}: a span of its own");
        assert_eq!(child.kind, SpanKind::Consumer as i32, "{hop}");
        assert!(child.end_time_unix_nano >= child.start_time_unix_nano, "{hop}");
        assert!(
            attribute(child, "topic").is_some() && attribute(child, "offset").is_some(),
            "{hop}"
        );
    }
    assert!(spans.iter().all(|(service, _)| service == "relaychat-local"));

    alice.close().await;
    bob.close().await;
    running.stop().await;
}
