//! The custom resource as CloudFormation drives it: requests in the service's JSON, the answers
//! caught on a stand-in for the pre-signed response URL, the topics applied on the real broker.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest;
use axum::Router;
use axum::extract::State;
use axum::routing::put;
use kafka_topics::KafkaTopics;
use relaychat_adapters::kafka::KafkaSettings;
use relaychat_admin::topics::{Applied, apply, catalogue};
use relaychat_schema::Topics;
use relaychat_testkit::broker::OwnBroker;
use relaychat_testkit::{kafka_settings, unique, unreachable_kafka};
use serde_json::{Value, json};

type Answers = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A stand-in for S3's pre-signed URL: keeps each answer with its content type.
async fn response_url() -> (String, Answers) {
    let answers: Answers = Arc::default();
    let app = Router::new()
        .route(
            "/answer",
            put(
                |State(a): State<Answers>, headers: axum::http::HeaderMap, body: String| async move {
                    let content_type = headers
                        .get("content-type")
                        .map(|v| v.to_str().unwrap_or_default().to_owned());
                    a.lock()
                        .unwrap()
                        .push((content_type, serde_json::from_str(&body).unwrap()));
                },
            ),
        )
        .with_state(answers.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/answer", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, answers)
}

fn request(kind: &str, url: &str, properties: Value) -> CloudFormationCustomResourceRequest {
    let mut r = json!({
        "RequestType": kind,
        "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:relaychat-KafkaTopicsFunction",
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/relaychat/0a1b2c3d",
        "RequestId": unique("request"),
        "ResourceType": "Custom::KafkaTopics",
        "LogicalResourceId": "KafkaTopics",
        "ResourceProperties": properties,
    });
    if kind != "Create" {
        r["PhysicalResourceId"] = json!("KafkaTopics-physical");
    }
    if kind == "Update" {
        r["OldResourceProperties"] = json!({"ServiceToken": "x", "Replication": "1"});
    }
    serde_json::from_value(r).expect("a CloudFormation request")
}

/// This test's own topic names (a deployment names its topics through the environment).
fn own_topics(run: &str) -> (Topics, Vec<String>) {
    let topics = Topics::from_lookup(|var| Some(format!("{run}-{}", var.to_lowercase())));
    let consumers = ["persist-message", "analytics"]
        .iter()
        .map(|c| format!("{run}-{c}"))
        .collect();
    (topics, consumers)
}

fn function(settings: KafkaSettings, run: &str, timeout: Duration) -> KafkaTopics {
    let (topics, consumers) = own_topics(run);
    KafkaTopics::new(Ok(settings), topics, consumers, timeout).expect("built")
}

fn only(answers: &Answers) -> (Option<String>, Value) {
    let mut all = answers.lock().unwrap();
    assert_eq!(all.len(), 1, "one answer per request: {all:?}");
    all.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_makes_the_topics_and_update_finds_them_present() {
    let (url, answers) = response_url().await;
    let run = unique("cr");
    let topics = function(kafka_settings(), &run, Duration::from_secs(30));

    let create = request("Create", &url, json!({"ServiceToken": "x", "Replication": "1"}));
    topics.handle(&create).await.expect("answered");
    let (content_type, answer) = only(&answers);
    assert_eq!(content_type, None, "a pre-signed S3 URL takes no content type");
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["LogicalResourceId"], "KafkaTopics");
    assert_eq!(answer["RequestId"], create_request_id(&create));
    let physical = answer["PhysicalResourceId"].as_str().unwrap().to_owned();
    assert!(physical.starts_with("KafkaTopics-"), "{physical}");
    let created: Vec<&str> = answer["Data"]["Created"].as_str().unwrap().split(',').collect();
    // Six catalogue topics and the two consumers' dead-letter topics.
    assert_eq!(created.len(), 8, "{answer}");
    assert!(created.contains(&format!("{run}-persist-message-dlq").as_str()));

    // The broker has them as the catalogue says: applying again creates nothing.
    let (names, consumers) = own_topics(&run);
    let consumers: Vec<&str> = consumers.iter().map(String::as_str).collect();
    let again = apply(
        &kafka_settings(),
        &catalogue(&names, &consumers),
        1,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert!(again.iter().all(|(_, a)| *a == Applied::Present), "{again:?}");

    let update = request(
        "Update",
        &url,
        json!({"ServiceToken": "x", "Replication": "1", "CodeVersion": "2"}),
    );
    topics.handle(&update).await.expect("answered");
    let (_, answer) = only(&answers);
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["PhysicalResourceId"], "KafkaTopics-physical", "kept on update");
    assert_eq!(answer["Data"]["Present"], "8");
    assert_eq!(answer["Data"]["Created"], "");
    assert_eq!(answer["Data"]["Differs"], "", "as the catalogue wants them");
}

fn create_request_id(request: &CloudFormationCustomResourceRequest) -> String {
    match request {
        CloudFormationCustomResourceRequest::Create(r) => r.request_id.clone(),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_broker_fails_the_request_in_time_with_the_reason() {
    let (url, answers) = response_url().await;
    let broker = OwnBroker::start();
    broker.hang();
    let run = unique("cr-hung");
    let topics = function(KafkaSettings::plaintext(&broker.brokers), &run, Duration::from_secs(4));
    let started = Instant::now();
    topics
        .handle(&request("Create", &url, json!({"Replication": "1"})))
        .await
        .expect("answered");
    let took = started.elapsed();
    let (_, answer) = only(&answers);
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    let reason = answer["Reason"].as_str().unwrap().to_lowercase();
    assert!(
        reason.contains("did not answer within 4 s") || reason.contains("timed out"),
        "{reason}"
    );
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    broker.resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_keeps_the_topics_and_needs_no_broker() {
    let (url, answers) = response_url().await;
    let topics = function(unreachable_kafka(), &unique("cr-del"), Duration::from_secs(30));
    let started = Instant::now();
    topics
        .handle(&request("Delete", &url, json!({"Replication": "3"})))
        .await
        .expect("answered");
    assert!(started.elapsed() < Duration::from_secs(2), "no broker was asked");
    let (_, answer) = only(&answers);
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["PhysicalResourceId"], "KafkaTopics-physical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_properties_and_missing_settings_are_failed_with_their_reason() {
    let (url, answers) = response_url().await;
    let topics = function(kafka_settings(), &unique("cr-bad"), Duration::from_secs(30));
    topics
        .handle(&request("Create", &url, json!({"Replication": "three"})))
        .await
        .expect("answered");
    let (_, answer) = only(&answers);
    assert_eq!(answer["Status"], "FAILED");
    assert!(
        answer["Reason"].as_str().unwrap().contains("Replication must be"),
        "{answer}"
    );
    assert!(!answer["PhysicalResourceId"].as_str().unwrap().is_empty());

    let (names, consumers) = own_topics(&unique("cr-nosettings"));
    let no_settings = KafkaTopics::new(
        Err("MSK_CLUSTER_ARN: no brokers".into()),
        names,
        consumers,
        Duration::from_secs(30),
    )
    .unwrap();
    no_settings
        .handle(&request("Update", &url, json!({})))
        .await
        .expect("answered");
    let (_, answer) = only(&answers);
    assert_eq!(answer["Status"], "FAILED");
    assert_eq!(answer["Reason"], "Kafka settings: MSK_CLUSTER_ARN: no brokers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_the_response_url_refuses_is_an_error() {
    let topics = function(unreachable_kafka(), &unique("cr-refused"), Duration::from_secs(30));
    // Nothing listens there: every attempt fails, and the invocation says so.
    let url = format!("http://{}/answer", unreachable_kafka().brokers);
    let err = topics
        .handle(&request("Delete", &url, json!({})))
        .await
        .expect_err("not delivered");
    assert!(err.is_retryable(), "{err}");
}
