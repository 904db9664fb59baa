use std::time::Duration;

use relaychat_adapters::kafka::*;
use relaychat_core::ports::{DeadLetters, Publisher};
use relaychat_schema::RecordId;
use relaychat_schema::kafka::RawRecord;
use relaychat_testkit::{create_topics, kafka_settings, read_topic, unique};

#[tokio::test]
async fn published_records_are_on_the_broker_when_publish_returns() {
    let topic = unique("chat-messages");
    create_topics(&[(&topic, 3)]).await;
    let publisher = KafkaPublisher::new(&kafka_settings()).unwrap();
    for i in 0..5 {
        publisher
            .publish(&topic, "conv-1", format!("{{\"n\":{i}}}").into_bytes())
            .await
            .unwrap();
    }
    let got = read_topic(&topic, 5, Duration::from_secs(10));
    assert_eq!(got.len(), 5);
    // One key, one partition, in order.
    assert!(
        got.iter()
            .all(|r| r.partition == got[0].partition && r.key.as_deref() == Some(&b"conv-1"[..]))
    );
    let ns: Vec<i64> = got.iter().map(|r| r.json()["n"].as_i64().unwrap()).collect();
    assert_eq!(ns, vec![0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn dead_letters_keep_the_original_record_and_say_why() {
    let consumer = unique("persist-message");
    let publisher = KafkaPublisher::new(&kafka_settings()).unwrap();
    let dlq = KafkaDeadLetters::new(publisher, &consumer);
    assert_eq!(dlq.topic(), format!("{consumer}-dlq"));
    create_topics(&[(dlq.topic(), 1)]).await;
    let raw = RawRecord {
        id: RecordId {
            topic: "chat-messages".into(),
            partition: 2,
            offset: 41,
        },
        key: Some(b"c1".to_vec()),
        value: b"{not json".to_vec(),
        headers: vec![("traceparent".into(), b"00-abc".to_vec())],
    };
    dlq.dead_letter(&raw, "invalid JSON: key must be a string at line 1 column 2")
        .await
        .unwrap();
    let got = read_topic(dlq.topic(), 1, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(
        (r.key.as_deref(), r.value.as_slice()),
        (Some(&b"c1"[..]), &b"{not json"[..])
    );
    assert_eq!(r.header("traceparent"), Some(&b"00-abc"[..]));
    assert_eq!(r.header(DLQ_SOURCE_HEADER), Some(&b"chat-messages-2@41"[..]));
    assert_eq!(r.header(DLQ_CONSUMER_HEADER), Some(consumer.as_bytes()));
    assert!(
        std::str::from_utf8(r.header(DLQ_REASON_HEADER).unwrap())
            .unwrap()
            .starts_with("invalid JSON")
    );
}

#[tokio::test]
async fn an_unreachable_broker_is_a_retryable_failure_within_the_delivery_timeout() {
    let settings = relaychat_testkit::unreachable_kafka();
    let publisher = KafkaPublisher::new(&settings).unwrap();
    let started = std::time::Instant::now();
    let err = publisher
        .publish("chat-messages", "c1", b"{}".to_vec())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{}", err.chain());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "bounded by the delivery timeout"
    );
}

#[test]
fn settings_choose_the_security_protocol() {
    let mut s = KafkaSettings::plaintext("b:9092");
    assert_eq!(s.client_config().get("security.protocol"), Some("plaintext"));
    s.tls = true;
    assert_eq!(s.client_config().get("security.protocol"), Some("ssl"));
    s.auth = KafkaAuth::Scram {
        mechanism: "SCRAM-SHA-512".into(),
        username: "u".into(),
        password: "p".into(),
    };
    let c = s.client_config();
    assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
    assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
}

/// MSK IAM: the OAUTHBEARER token is a SigV4-presigned `kafka-cluster:Connect` URL signed with the
/// default credential chain (here the static credentials `make test` exports).
#[test]
fn msk_iam_tokens_are_presigned_with_the_default_credentials() {
    use base64::Engine as _;
    use rdkafka::ClientContext as _;
    let mut settings = KafkaSettings::plaintext("b-1.example.kafka.us-east-1.amazonaws.com:9098");
    settings.auth = KafkaAuth::MskIam {
        region: "us-east-1".into(),
    };
    let config = settings.client_config();
    assert_eq!(
        (config.get("security.protocol"), config.get("sasl.mechanism")),
        (Some("sasl_ssl"), Some("OAUTHBEARER"))
    );
    let key_id = std::env::var("AWS_ACCESS_KEY_ID").expect("make test exports static credentials");
    let token = settings.context().generate_oauth_token(None).unwrap();
    let url = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&token.token)
            .unwrap(),
    )
    .unwrap();
    assert!(
        url.starts_with("https://kafka.us-east-1.amazonaws.com/?Action=kafka-cluster%3AConnect"),
        "{url}"
    );
    assert!(url.contains(&format!("X-Amz-Credential={key_id}%2F")), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert!(
        token.lifetime_ms > chrono::Utc::now().timestamp_millis(),
        "expires in the future"
    );
    assert!(
        KafkaSettings::plaintext("b:9092")
            .context()
            .generate_oauth_token(None)
            .is_err(),
        "only for MSK IAM"
    );
}

/// GetBootstrapBrokers, against a stand-in for the Kafka control-plane API that answers as AWS does
/// (REST-JSON, camelCase members).
#[tokio::test]
async fn msk_brokers_are_found_from_the_cluster_arn() {
    let app = axum::Router::new().fallback(|uri: axum::http::Uri| async move {
        let path = uri.path().to_owned();
        if !(path.starts_with("/v1/clusters/") && path.ends_with("/bootstrap-brokers")) {
            return (axum::http::StatusCode::NOT_FOUND, axum::Json(serde_json::json!({"message": path})));
        }
        let body = serde_json::json!({
            "bootstrapBrokerStringSaslIam": "b-1.relaychat.kafka.us-east-1.amazonaws.com:9098,b-2.relaychat.kafka.us-east-1.amazonaws.com:9098",
            "bootstrapBrokerStringTls": "b-1.relaychat.kafka.us-east-1.amazonaws.com:9094",
        });
        (axum::http::StatusCode::OK, axum::Json(body))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = relaychat_testkit::aws_config().await;
    let client = aws_sdk_kafka::Client::from_conf(
        aws_sdk_kafka::config::Builder::from(&config)
            .endpoint_url(format!("http://{addr}"))
            .build(),
    );
    let arn = "arn:aws:kafka:us-east-1:123456789012:cluster/relaychat/6c3f1a52-7f1e-4d5c-9a3e-2b1c0d9e8f7a-2";
    let iam = msk_bootstrap_brokers(&client, arn, Some("AWS_MSK_IAM")).await.unwrap();
    assert_eq!(
        iam,
        "b-1.relaychat.kafka.us-east-1.amazonaws.com:9098,b-2.relaychat.kafka.us-east-1.amazonaws.com:9098"
    );
    let tls = msk_bootstrap_brokers(&client, arn, None).await.unwrap();
    assert_eq!(tls, "b-1.relaychat.kafka.us-east-1.amazonaws.com:9094");
    let scram = msk_bootstrap_brokers(&client, arn, Some("SCRAM-SHA-512"))
        .await
        .unwrap_err();
    assert!(scram.to_string().contains("MSK_CLUSTER_ARN"), "{scram}");
}

/// A broker that hangs mid-send: sends fail fast (retryable, within the delivery timeout), and
/// once the broker is back the publisher works again by itself. Before the fix the producer
/// stayed fenced for good (Tansu answers librdkafka's epoch bump after a timed-out idempotent
/// send with PRODUCER_FENCED, a fatal error) and every later send failed.
#[tokio::test]
async fn a_hung_broker_fails_sends_fast_and_the_publisher_recovers_when_it_returns() {
    use relaychat_testkit::broker::OwnBroker;
    let broker = OwnBroker::start();
    let mut settings = KafkaSettings::plaintext(&broker.brokers);
    settings.delivery_timeout = Duration::from_millis(1_500);
    let topic = unique("hang");
    relaychat_testkit::create_topics_on(&settings, &[(&topic, 1)]).await;
    let publisher = KafkaPublisher::new(&settings).unwrap();
    publisher.publish(&topic, "k", b"before".to_vec()).await.unwrap();

    broker.hang();
    let started = std::time::Instant::now();
    let err = publisher.publish(&topic, "k", b"during".to_vec()).await.unwrap_err();
    let took = started.elapsed();
    assert!(err.is_retryable(), "{}", err.chain());
    assert!(took < Duration::from_secs(3), "a hung broker answered after {took:?}");
    // Queueing a best-effort record never waits, even now.
    let started = std::time::Instant::now();
    let _ = publisher.publish_best_effort(&topic, "k", b"analytics".to_vec());
    assert!(started.elapsed() < Duration::from_millis(100));
    broker.resume();

    // Within a few tries the publisher sends again (on a rebuilt producer if the old one was fenced).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut failures = Vec::new();
    loop {
        match publisher.publish(&topic, "k", b"after".to_vec()).await {
            Ok(()) => break,
            Err(e) => failures.push(e.chain()),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the publisher never recovered: {failures:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    publisher.publish(&topic, "k", b"and again".to_vec()).await.unwrap();
    eprintln!(
        "hung broker: failed in {took:?}; recovered after {} failed tries; producer rebuilt {} time(s)",
        failures.len(),
        publisher.rebuilds()
    );
}

/// "Nothing was dead-lettered" must mean nothing came within the whole wait: before the fix
/// `read_topic(t, 0, timeout)` gave up after 300 ms whatever the timeout, so a record arriving a
/// second later was never seen.
#[tokio::test]
async fn read_topic_waits_its_whole_timeout_before_saying_nothing_came() {
    let topic = unique("absence");
    create_topics(&[(&topic, 1)]).await;
    let publisher = KafkaPublisher::new(&kafka_settings()).unwrap();
    let late = {
        let (publisher, topic) = (publisher.clone(), topic.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1_200)).await;
            publisher.publish(&topic, "k", b"late".to_vec()).await.unwrap();
        })
    };
    let started = std::time::Instant::now();
    let topic_for_read = topic.clone();
    let got = tokio::task::spawn_blocking(move || read_topic(&topic_for_read, 0, Duration::from_secs(4)))
        .await
        .unwrap();
    late.await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "returned after {:?}",
        started.elapsed()
    );
    assert_eq!(got.len(), 1, "the late record is seen");
}

/// "Exactly N" must see an extra record: once the expected ones are in, `read_topic` reads on to
/// the end of every partition (no settle window to race against).
#[tokio::test]
async fn read_topic_returns_every_record_written_before_it_even_past_the_expected_count() {
    let topic = unique("extra");
    create_topics(&[(&topic, 3)]).await;
    let publisher = KafkaPublisher::new(&kafka_settings()).unwrap();
    for i in 0..12 {
        publisher
            .publish(&topic, &format!("k{i}"), format!("v{i}").into_bytes())
            .await
            .unwrap();
    }
    let topic_for_read = topic.clone();
    let got = tokio::task::spawn_blocking(move || read_topic(&topic_for_read, 1, Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(got.len(), 12, "all twelve, though one was expected");
}
