//! `topics apply` against the real broker: the catalogue's topics and the dead-letter topics are
//! created with the catalogue's partitions, and applying again changes nothing.

use std::time::Duration;

use relaychat_admin::CONSUMERS;
use relaychat_admin::topics::{Applied, Drift, apply, catalogue};
use relaychat_schema::Topics;
use relaychat_testkit::{kafka_settings, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_is_created_once_and_then_found_present() {
    // Names of this test's own (as a deployment names its topics through the environment).
    let run = unique("apply");
    let topics = Topics::from_lookup(|var| Some(format!("{run}-{}", var.to_lowercase())));
    let consumers: Vec<String> = CONSUMERS.iter().map(|c| format!("{run}-{c}")).collect();
    let consumers: Vec<&str> = consumers.iter().map(String::as_str).collect();
    let wanted = catalogue(&topics, &consumers);
    assert_eq!(wanted.len(), 6 + CONSUMERS.len());
    let settings = kafka_settings();
    let first = apply(&settings, &wanted, 1, Duration::from_secs(30))
        .await
        .expect("applied");
    assert!(first.iter().all(|(_, a)| *a == Applied::Created), "{first:?}");
    let again = apply(&settings, &wanted, 1, Duration::from_secs(30))
        .await
        .expect("applied");
    assert!(again.iter().all(|(_, a)| *a == Applied::Present), "{again:?}");
    let chat = wanted
        .iter()
        .find(|w| w.name == topics.chat_messages)
        .expect("chat-messages");
    assert_eq!(chat.partitions, 3);
    assert!(
        wanted
            .iter()
            .any(|w| w.name == format!("{run}-persist-message-dlq") && w.partitions == 1)
    );
}

/// The topics carry the catalogue's retention, a short segment where the retention is short, and
/// the in-sync replicas an `acks=all` write waits for (as the brokers describe them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topics_carry_retention_segments_and_in_sync_replicas() {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    let run = unique("configs");
    let topics = Topics::from_lookup(|var| Some(format!("{run}-{}", var.to_lowercase())));
    apply(&kafka_settings(), &catalogue(&topics, &[]), 1, Duration::from_secs(30))
        .await
        .expect("applied");
    let admin: AdminClient<DefaultClientContext> = kafka_settings().client_config().create().unwrap();
    let config = |topic: &str, name: &str| {
        let admin = &admin;
        let (topic, name) = (topic.to_owned(), name.to_owned());
        async move {
            let described = admin
                .describe_configs([&ResourceSpecifier::Topic(&topic)], &AdminOptions::new())
                .await
                .expect("described");
            let resource = described.into_iter().next().unwrap().expect("the topic");
            resource.get(&name).and_then(|e| e.value.clone())
        }
    };
    let typing = &topics.typing_events;
    assert_eq!(config(typing, "retention.ms").await.as_deref(), Some("60000"));
    assert_eq!(config(typing, "segment.ms").await.as_deref(), Some("60000"));
    assert_eq!(config(typing, "min.insync.replicas").await.as_deref(), Some("1"));
    let chat = &topics.chat_messages;
    assert_eq!(config(chat, "retention.ms").await.as_deref(), Some("604800000"));
    assert_eq!(
        config(chat, "segment.ms").await,
        None,
        "a week's retention keeps the default segment"
    );
    assert_eq!(relaychat_admin::topics::min_insync_replicas(3), Some(2));
    assert_eq!(relaychat_admin::topics::min_insync_replicas(2), Some(1));
    assert_eq!(
        relaychat_admin::topics::min_insync_replicas(relaychat_admin::topics::BROKER_DEFAULT_REPLICATION),
        None
    );
}

/// A topic whose configs are not the catalogue's (its retention changed since) is reported, and
/// left as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_with_other_configs_is_reported_not_changed() {
    let run = unique("drift");
    let topics = Topics::from_lookup(|var| Some(format!("{run}-{}", var.to_lowercase())));
    let mut wanted = catalogue(&topics, &[]);
    let settings = kafka_settings();
    apply(&settings, &wanted, 1, Duration::from_secs(30))
        .await
        .expect("applied");
    // The catalogue now keeps chat messages two days instead of seven.
    let chat = wanted.iter_mut().find(|w| w.name == topics.chat_messages).unwrap();
    chat.retention = Duration::from_secs(2 * 24 * 60 * 60);
    let again = apply(&settings, &wanted, 1, Duration::from_secs(30))
        .await
        .expect("applied");
    let (_, chat) = again.iter().find(|(n, _)| *n == topics.chat_messages).unwrap();
    let Applied::Differs(drift) = chat else {
        panic!("{chat:?}")
    };
    assert_eq!(
        drift[0],
        Drift {
            config: "retention.ms",
            has: Some("604800000".into()),
            wants: "172800000".into(),
        }
    );
    // Two days is under a week: the catalogue now wants short segments too (a broker may report
    // the default week, or nothing, for a topic created without one).
    assert_eq!((drift[1].config, drift[1].wants.as_str()), ("segment.ms", "172800000"));
    assert_ne!(drift[1].has.as_deref(), Some("172800000"));
    assert_eq!(drift.len(), 2);
    assert!(
        again
            .iter()
            .filter(|(n, _)| *n != topics.chat_messages)
            .all(|(_, a)| *a == Applied::Present),
        "{again:?}"
    );
}
