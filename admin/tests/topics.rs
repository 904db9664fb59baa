//! `topics apply` against the real broker: the catalogue's topics and the dead-letter topics are
//! created with the catalogue's partitions, and applying again changes nothing.

use relaychat_admin::CONSUMERS;
use relaychat_admin::topics::{Applied, apply, catalogue};
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
    let first = apply(&settings, &wanted, 1).await.expect("applied");
    assert!(first.iter().all(|(_, a)| *a == Applied::Created), "{first:?}");
    let again = apply(&settings, &wanted, 1).await.expect("applied");
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
