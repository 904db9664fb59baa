//! Dead letters against the real broker: a record persist-message dead-letters because of a bug
//! is listed with its reason and source, redriven after the fix (twice: handlers are idempotent)
//! and stored exactly once; a record that keeps failing is refused after `MAX_REDRIVES`.

use std::time::Duration;

use persist_message::PersistMessage;
use relaychat_adapters::dynamo::DynamoStore;
use relaychat_adapters::kafka::{KafkaDeadLetters, KafkaPublisher};
use relaychat_admin::dlq::{self, MAX_REDRIVES, REDRIVE_COUNT_HEADER, Redrive};
use relaychat_core::Error;
use relaychat_core::memory::sample_message;
use relaychat_core::ports::{ChangeOutcome, Inserted, MessageStore};
use relaychat_schema::events::TopicEvent;
use relaychat_schema::{ChatMessage, ConversationId, MessageChange, MessageId, UserId};
use relaychat_testkit::{create_topics, dynamo_store, event_from, kafka_settings, read_topic, unique};

const WAIT: Duration = Duration::from_secs(10);

/// persist-message's store with a bug: it refuses every message (a permanent failure).
struct Buggy;

impl MessageStore for Buggy {
    async fn insert_message(&self, _: &ChatMessage) -> Result<Inserted, Error> {
        Err(Error::rejected("store message", "a bug refuses every message"))
    }
    async fn set_last_message(&self, _: &ChatMessage) -> Result<(), Error> {
        Ok(())
    }
    async fn apply_change(&self, _: &MessageChange) -> Result<ChangeOutcome, Error> {
        Ok(ChangeOutcome::Applied)
    }
    async fn messages_between(
        &self,
        _: &ConversationId,
        _: Option<MessageId>,
        _: MessageId,
        _: usize,
    ) -> Result<Vec<(MessageId, UserId)>, Error> {
        Ok(Vec::new())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_redriven_after_the_fix_and_stored_exactly_once() {
    let (chat, dead) = (unique("chat-messages"), unique("persist-message-dlq"));
    create_topics(&[(&chat, 1), (&dead, 1)]).await;
    let settings = kafka_settings();
    let publisher = KafkaPublisher::new(&settings).expect("a producer");
    let dead_letters = KafkaDeadLetters::to_topic(publisher.clone(), "persist-message", dead.clone());
    let m = sample_message(&unique("c"), "alice", &["alice", "bob"]);
    publisher
        .send(
            &chat,
            Some(m.conversation_id.as_str().as_bytes()),
            &m.to_json(),
            &[("traceparent", b"00-abc")],
        )
        .await
        .expect("sent");

    // GIVEN persist-message with a bug dead-letters the message
    let buggy = PersistMessage::new(Buggy, dead_letters.clone());
    let first = read_topic(&chat, 1, WAIT);
    assert!(
        buggy
            .invoke(&event_from(&chat, &first))
            .await
            .batch_item_failures
            .is_empty()
    );
    // THEN `dlq list` shows it: why, whence, whose
    let letters = dlq::read(&settings, &dead).expect("read");
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert!(
        letter.reason().is_some_and(|r| r.contains("a bug refuses")),
        "{}",
        letter.describe()
    );
    assert_eq!(letter.source().map(|s| s.to_string()), Some(format!("{chat}-0@0")));
    assert_eq!(letter.consumer().as_deref(), Some("persist-message"));
    assert!(letter.summary(chrono::Utc::now()).contains("redrives=0"));
    assert!(
        letter.describe().contains(m.message_id.to_string().as_str()),
        "shown whole"
    );

    // WHEN the bug is fixed and the letter redriven, twice
    let store: DynamoStore = dynamo_store().await;
    let fixed = PersistMessage::new(store.clone(), dead_letters.clone());
    for _ in 0..2 {
        let Redrive::Sent(to) = dlq::redrive(&publisher, letter).await.expect("redrive") else {
            panic!("redriven")
        };
        assert_eq!(to.topic, chat);
    }
    let all = read_topic(&chat, 3, WAIT);
    assert_eq!(all.len(), 3);
    let redriven = &all[1..];
    assert!(
        redriven
            .iter()
            .all(|r| r.header(REDRIVE_COUNT_HEADER) == Some(&b"1"[..]))
    );
    assert!(
        redriven.iter().all(|r| r.header("traceparent") == Some(&b"00-abc"[..])),
        "its own headers go back"
    );
    assert!(
        redriven.iter().all(|r| r.header("x-relaychat-dlq-reason").is_none()),
        "the dead-letter ones stay"
    );
    assert!(
        fixed
            .invoke(&event_from(&chat, redriven))
            .await
            .batch_item_failures
            .is_empty()
    );
    // THEN it is stored exactly once, and counted unread once
    let stored = store
        .messages_between(&m.conversation_id, None, MessageId::new(), 10)
        .await
        .expect("read");
    assert_eq!(stored.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![m.message_id]);
    assert_eq!(
        relaychat_testkit::unread(&store, "bob", m.conversation_id.as_str()).await,
        1
    );

    // AND a record that fails again every time is refused once redriven MAX_REDRIVES times
    let mut again = redriven[0].clone();
    for round in 1..=MAX_REDRIVES {
        assert!(
            buggy
                .invoke(&event_from(&chat, std::slice::from_ref(&again)))
                .await
                .batch_item_failures
                .is_empty()
        );
        let latest = dlq::read(&settings, &dead).expect("read").pop().expect("a letter");
        assert_eq!(latest.redrives(), round, "the count travels with the record");
        match dlq::redrive(&publisher, &latest).await.expect("redrive") {
            Redrive::Sent(to) => {
                assert!(round < MAX_REDRIVES, "round {round}");
                again = read_topic(&chat, to.offset as usize + 1, WAIT)
                    .pop()
                    .expect("the redriven record");
            }
            Redrive::Refused(why) => {
                assert_eq!(round, MAX_REDRIVES, "{why}");
                assert!(why.contains("redriven 3 times"), "{why}");
            }
        }
    }
}
