//! What persisting one message costs as a group grows: DynamoDB calls, items written and request
//! bytes (counted at the test kit's proxy in front of DynamoDB Local) for a message in groups of
//! 2, 99 (the largest small group), 100 and 10,000 members. A small group adds to each
//! recipient's unread count in the message's transaction, so its cost grows with it up to 99; a
//! large group's is the same at 100 and at 10,000. Printed on a `proof:` line.

use chrono::Utc;
use relaychat_core::memory::sample_message;
use relaychat_core::persist::{Persisted, persist_message};
use relaychat_core::ports::{Conversation, ConversationStore};
use relaychat_schema::events::MAX_SMALL_MEMBERS;
use relaychat_schema::{ConversationId, MessageId, UserId};
use relaychat_testkit::dynamo_faults::DynamoFaults;
use relaychat_testkit::dynamo_store;

/// What one message cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cost {
    calls: usize,
    items: usize,
    bytes: usize,
}

fn user(id: String) -> UserId {
    UserId::parse(id).expect("a user id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persisting_a_message_costs_the_same_in_a_group_of_100_and_of_10000() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let direct = dynamo_store().await;
    let proxy = DynamoFaults::start(&std::env::var("DYNAMODB_ENDPOINT").expect("run with make test")).await;
    let store = proxy.store(direct.tables().clone()).await;
    let mut figures = Vec::new();
    for size in [2, MAX_SMALL_MEMBERS, 100, 10_000] {
        // A group of `size`: created with up to 99, grown past that with memberships only.
        let members: Vec<UserId> = (0..size).map(|i| user(format!("s{size}-{i:05}"))).collect();
        let first = size.min(MAX_SMALL_MEMBERS);
        let c = Conversation {
            id: ConversationId::parse(MessageId::new().to_string()).expect("an id"),
            title: None,
            members: members[..first].to_vec(),
            created_by: members[0].clone(),
            created_at: Utc::now(),
            large: None,
        };
        let mut c = direct.create_conversation(&c, None).await.expect("create");
        if size > first {
            c = direct
                .add_to_large(&c, &members[first..])
                .await
                .expect("grow")
                .expect("grown");
        }
        assert_eq!(c.member_count(), size);
        let names: Vec<&str> = c.members.iter().map(UserId::as_str).collect();
        let mut m = sample_message(c.id.as_str(), members[0].as_str(), &names);
        m.large_group = c.is_large();
        proxy.reset_counts();
        assert_eq!(persist_message(&store, &m).await.expect("persist"), Persisted::Stored);
        let cost = Cost {
            calls: proxy.calls_by_operation().values().sum(),
            items: proxy.items_written(),
            bytes: proxy.request_bytes(),
        };
        // Stored for real: the last member has it unread.
        let last = &members[size - 1];
        let listed = direct.conversations_of(last).await.expect("list");
        let unread = listed.iter().find(|s| s.conversation_id == c.id).map(|s| s.unread);
        assert_eq!(unread, Some(1), "{size}: unread for {last}");
        figures.push((size, cost));
    }
    let line: Vec<String> = figures
        .iter()
        .map(|(size, c)| {
            format!(
                "{size} members: {} calls, {} items, {} bytes",
                c.calls, c.items, c.bytes
            )
        })
        .collect();
    println!("proof: persisting one message: {}", line.join("; "));
    let at = |n: usize| {
        figures
            .iter()
            .find(|(size, _)| *size == n)
            .map(|(_, c)| *c)
            .expect("measured")
    };
    let (hundred, ten_thousand) = (at(100), at(10_000));
    assert_eq!(
        (hundred.calls, hundred.items),
        (ten_thousand.calls, ten_thousand.items),
        "a large group's message costs the same whatever its size"
    );
    // The ids of 10,000 members are no longer in the request: the bytes differ by the ids' digits only.
    assert!(
        ten_thousand.bytes.abs_diff(hundred.bytes) < 64,
        "{hundred:?} against {ten_thousand:?}"
    );
    assert!(hundred.items <= 4, "{hundred:?}");
    assert!(at(2).items <= hundred.items, "a 1:1 is as cheap: {:?}", at(2));
    assert!(
        at(MAX_SMALL_MEMBERS).items > hundred.items,
        "a small group's grows with it"
    );
}
