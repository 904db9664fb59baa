use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use relaychat_adapters::dynamo::{DynamoStore, TableNames};
use relaychat_core::ports::*;
use relaychat_schema::*;
use relaychat_testkit::{dynamo_store, unread};

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn message(conv: &str, sender: &str, recipients: &[&str]) -> ChatMessage {
    ChatMessage {
        schema_version: SCHEMA_VERSION,
        message_id: MessageId::new(),
        conversation_id: ConversationId::parse(conv).unwrap(),
        sender_id: user(sender),
        sender_name: DisplayName::parse(sender).unwrap(),
        content: MessageContent::parse("hello").unwrap(),
        client_message_id: Some(ClientMessageId::parse("c-1").unwrap()),
        sent_at: Utc::now(),
        recipients: recipients.iter().map(|r| user(r)).collect(),
        large_group: false,
        fanout_after: None,
    }
}

#[tokio::test]
async fn a_message_is_stored_once_with_one_unread_per_recipient() {
    let store = dynamo_store().await;
    let m = message("c1", "alice", &["alice", "bob", "carol"]);
    assert_eq!(
        store.insert_message(&m).await.unwrap(),
        Inserted::Stored {
            already_read_by: vec![]
        }
    );
    assert_eq!(
        store.insert_message(&m).await.unwrap(),
        Inserted::Repeat,
        "a replay is recognised"
    );
    store.set_last_message(&m).await.unwrap();
    store.set_last_message(&m).await.unwrap();
    assert_eq!(unread(&store, "bob", "c1").await, 1);
    assert_eq!(unread(&store, "carol", "c1").await, 1);
    assert_eq!(unread(&store, "alice", "c1").await, 0);
    let listed = store
        .messages_between(&m.conversation_id, None, m.message_id, 10)
        .await
        .unwrap();
    assert_eq!(listed, vec![(m.message_id, user("alice"))]);
}

#[tokio::test]
async fn last_message_only_moves_forward() {
    let store = dynamo_store().await;
    let older = message("c1", "alice", &["bob"]);
    let newer = message("c1", "bob", &["alice"]);
    store.set_last_message(&newer).await.unwrap();
    store.set_last_message(&older).await.unwrap();
    let item = store
        .raw_client()
        .get_item()
        .table_name(store.tables().conversations())
        .key("conversationId", AttributeValue::S("c1".into()))
        .send()
        .await
        .unwrap();
    let last = item
        .item()
        .unwrap()
        .get("lastMessageId")
        .unwrap()
        .as_s()
        .unwrap()
        .clone();
    assert_eq!(last, newer.message_id.to_string());
}

#[tokio::test]
async fn receipts_move_forward_only() {
    let store = dynamo_store().await;
    let (id, conv, bob) = (MessageId::new(), ConversationId::parse("c1").unwrap(), user("bob"));
    let now = Utc::now();
    let steps = [
        (DeliveryStatus::Delivered, ReceiptMove::Moved),
        (DeliveryStatus::Delivered, ReceiptMove::AlreadyThere),
        (DeliveryStatus::Read, ReceiptMove::Moved),
        (DeliveryStatus::Delivered, ReceiptMove::Beyond),
        (DeliveryStatus::Read, ReceiptMove::AlreadyThere),
    ];
    for (status, expected) in steps {
        assert_eq!(
            store.advance_receipt(id, &conv, &bob, status, now).await.unwrap(),
            expected,
            "{status:?}"
        );
    }
}

#[tokio::test]
async fn read_receipts_are_written_in_batches_and_stay_read() {
    let store = dynamo_store().await;
    let (conv, bob) = (ConversationId::parse("c1").unwrap(), user("bob"));
    let ids: Vec<MessageId> = (0..60).map(|_| MessageId::new()).collect();
    store
        .advance_receipt(ids[0], &conv, &bob, DeliveryStatus::Delivered, Utc::now())
        .await
        .unwrap();
    store.mark_read(&conv, &bob, &ids, Utc::now()).await.unwrap();
    store.mark_read(&conv, &bob, &ids, Utc::now()).await.unwrap();
    for id in [ids[0], ids[30], ids[59]] {
        assert_eq!(
            store
                .advance_receipt(id, &conv, &bob, DeliveryStatus::Delivered, Utc::now())
                .await
                .unwrap(),
            ReceiptMove::Beyond
        );
    }
}

#[tokio::test]
async fn the_read_cursor_moves_forward_and_recounts_unread() {
    let store = dynamo_store().await;
    let ms: Vec<ChatMessage> = (0..4).map(|_| message("c1", "alice", &["alice", "bob"])).collect();
    let own = message("c1", "bob", &["alice", "bob"]);
    for m in ms.iter().chain([&own]) {
        store.insert_message(m).await.unwrap();
    }
    let (bob, conv) = (user("bob"), ms[0].conversation_id.clone());
    assert_eq!(unread(&store, "bob", "c1").await, 4);
    assert_eq!(store.read_position(&bob, &conv).await.unwrap().cursor, None);
    store.advance_read_cursor(&bob, &conv, ms[1].message_id).await.unwrap();
    assert_eq!(
        store.read_position(&bob, &conv).await.unwrap().cursor,
        Some(ms[1].message_id)
    );
    assert_eq!(
        unread(&store, "bob", "c1").await,
        2,
        "two of alice's messages are after the cursor; bob's own doesn't count"
    );
    store.advance_read_cursor(&bob, &conv, ms[0].message_id).await.unwrap();
    assert_eq!(
        store.read_position(&bob, &conv).await.unwrap().cursor,
        Some(ms[1].message_id),
        "never moves back"
    );
    let between = store
        .messages_between(&conv, Some(ms[1].message_id), own.message_id, 10)
        .await
        .unwrap();
    let ids: Vec<MessageId> = between.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![ms[2].message_id, ms[3].message_id, own.message_id]);
    let first_two = store.messages_between(&conv, None, own.message_id, 2).await.unwrap();
    assert_eq!(first_two.len(), 2, "at most the limit");
}

/// A message that reaches storage after the reader's cursor passed it (persist lags, or ids
/// minted out of order by two instances) is not unread and is READ at once.
#[tokio::test]
async fn a_message_stored_behind_the_cursor_is_read_not_unread() {
    let store = dynamo_store().await;
    let early = message("c1", "alice", &["alice", "bob", "carol"]);
    let late = message("c1", "alice", &["alice", "bob", "carol"]);
    let (bob, conv) = (user("bob"), early.conversation_id.clone());
    store.insert_message(&late).await.unwrap();
    store.advance_read_cursor(&bob, &conv, late.message_id).await.unwrap();
    assert_eq!(unread(&store, "bob", "c1").await, 0);
    assert_eq!(
        store.insert_message(&early).await.unwrap(),
        Inserted::Stored {
            already_read_by: vec![bob.clone()]
        }
    );
    assert_eq!(unread(&store, "bob", "c1").await, 0, "bob had read past it");
    assert_eq!(unread(&store, "carol", "c1").await, 2, "carol had not");
    assert_eq!(
        store
            .advance_receipt(early.message_id, &conv, &bob, DeliveryStatus::Read, Utc::now())
            .await
            .unwrap(),
        ReceiptMove::AlreadyThere
    );
}

/// The recount after a READ and a message stored at the same moment: the stored message's
/// increment is never overwritten by a count taken before it.
#[tokio::test]
async fn the_unread_recount_loses_no_message_stored_during_it() {
    let store = dynamo_store().await;
    let first = message("c1", "alice", &["alice", "bob"]);
    store.insert_message(&first).await.unwrap();
    let (bob, conv) = (user("bob"), first.conversation_id.clone());
    let mut later = Vec::new();
    for _ in 0..20 {
        later.push(message("c1", "alice", &["alice", "bob"]));
    }
    let (a, b) = tokio::join!(
        async {
            for m in &later {
                store.insert_message(m).await.unwrap();
            }
        },
        async {
            // Under a steady stream the recount may give up (retryable), as the ESM would then
            // retry it; whenever it succeeds, it is exact.
            let mut done = 0;
            while done < 5 {
                match store.advance_read_cursor(&bob, &conv, first.message_id).await {
                    Ok(()) => done += 1,
                    Err(e) => assert!(e.is_retryable(), "{}", e.chain()),
                }
                tokio::task::yield_now().await;
            }
        }
    );
    let ((), ()) = (a, b);
    assert_eq!(unread(&store, "bob", "c1").await, 20);
}

#[tokio::test]
async fn connections_are_found_by_user_and_expired_ones_are_ignored() {
    let store = dynamo_store().await;
    let bob = user("bob");
    let (c1, c2) = (
        ConnectionId::parse("bob-1=").unwrap(),
        ConnectionId::parse("bob-2=").unwrap(),
    );
    store.put_connection(&c1, &bob, "Bob").await.unwrap();
    store.put_connection(&c2, &bob, "Bob").await.unwrap();
    // A row whose TTL has passed but which DynamoDB has not deleted yet.
    store
        .raw_client()
        .put_item()
        .table_name(store.tables().connections())
        .item("connectionId", AttributeValue::S("bob-old".into()))
        .item("userId", AttributeValue::S("bob".into()))
        .item(
            "expiresAt",
            AttributeValue::N((Utc::now().timestamp() - 10).to_string()),
        )
        .send()
        .await
        .unwrap();
    let mut found = store.connections_of(&bob).await.unwrap();
    found.sort();
    assert_eq!(found, vec![c1.clone(), c2.clone()]);
    store.remove_connection(&c1).await.unwrap();
    store.remove_connection(&c1).await.unwrap();
    assert_eq!(store.connections_of(&bob).await.unwrap(), vec![c2]);
}

fn device(owner: &UserId, token: &str) -> Device {
    Device {
        user: owner.clone(),
        token: DeviceToken::parse(token).unwrap(),
        platform: "fcm".into(),
    }
}

#[tokio::test]
async fn a_notification_is_sent_once_per_device_and_devices_can_be_removed() {
    let store = dynamo_store().await;
    let carol = user("carol");
    let note = Notification::for_message(&message("c1", "alice", &["carol"]), &carol, None);
    let pending = |sent: &[&str]| Begun::Send {
        already_sent_to: sent.iter().map(|s| s.to_string()).collect(),
    };
    assert_eq!(store.begin(&note).await.unwrap(), pending(&[]));
    store.sent_to(&note, &device(&carol, "tok-1")).await.unwrap();
    assert_eq!(
        store.begin(&note).await.unwrap(),
        pending(&["tok-1"]),
        "still pending: an unfinished attempt is retried, minus the devices it reached"
    );
    store.mark_sent(&note, 1).await.unwrap();
    assert_eq!(
        store.begin(&note).await.unwrap(),
        Begun::AlreadySent,
        "sent: a replay sends nothing"
    );
    let row = store
        .notification(&carol, &note.notification_id)
        .await
        .unwrap()
        .unwrap();
    let expires: i64 = row["expiresAt"].as_n().unwrap().parse().unwrap();
    let days = (expires - Utc::now().timestamp()) / 86_400;
    assert!((29..=30).contains(&days), "kept 30 days, got {days}");

    let phone = device(&carol, "tok-1");
    store.register_device(&phone).await.unwrap();
    store.register_device(&phone).await.unwrap();
    assert_eq!(store.devices_of(&carol).await.unwrap(), vec![phone.clone()]);
    store.remove_device(&phone).await.unwrap();
    assert!(store.devices_of(&carol).await.unwrap().is_empty());
}

/// A phone passed on (or signed into by someone else) must stop getting the first user's
/// message previews: a token belongs to the user who registered it last.
#[tokio::test]
async fn a_device_token_belongs_to_one_user() {
    let store = dynamo_store().await;
    let (carol, dave) = (user("carol"), user("dave"));
    store.register_device(&device(&carol, "shared-phone")).await.unwrap();
    store.register_device(&device(&carol, "carol-tablet")).await.unwrap();
    store.register_device(&device(&dave, "shared-phone")).await.unwrap();
    assert_eq!(
        store.devices_of(&carol).await.unwrap(),
        vec![device(&carol, "carol-tablet")]
    );
    assert_eq!(
        store.devices_of(&dave).await.unwrap(),
        vec![device(&dave, "shared-phone")]
    );
    // carol removing a token that is no longer hers leaves dave's binding alone
    store.remove_device(&device(&carol, "shared-phone")).await.unwrap();
    store.register_device(&device(&dave, "shared-phone")).await.unwrap();
    assert_eq!(
        store.devices_of(&dave).await.unwrap(),
        vec![device(&dave, "shared-phone")]
    );
    // and a token as long as the limit is stored, not refused with `internal`
    let long = "x".repeat(DeviceToken::MAX_LEN);
    store.register_device(&device(&carol, &long)).await.unwrap();
    assert_eq!(store.devices_of(&carol).await.unwrap().len(), 2);
    assert!(DeviceToken::parse("x".repeat(DeviceToken::MAX_LEN + 1)).is_err());
}

#[tokio::test]
async fn each_record_is_counted_once_by_its_identity() {
    let store = dynamo_store().await;
    let key = |c: &str, f: &str| CounterKey {
        counter: c.into(),
        field: f.into(),
    };
    let record = |id: &str, keys: Vec<CounterKey>| Counted { id: id.into(), keys };
    let first = vec![
        record(
            "message#1",
            vec![key("conv#c1#d", "messages"), key("user#a#d", "messagesSent")],
        ),
        record(
            "message#2",
            vec![key("conv#c1#d", "messages"), key("user#a#d", "messagesSent")],
        ),
        record("event#3", vec![key("conv#c1#d", "messageRead")]),
    ];
    assert_eq!(store.count_once(&first).await.unwrap(), 3);
    assert_eq!(store.count_once(&first).await.unwrap(), 0, "a replay adds nothing");
    // A batch mixing counted and new records: only the new ones add.
    let mixed = vec![
        first[1].clone(),
        record(
            "message#4",
            vec![key("conv#c1#d", "messages"), key("user#a#d", "messagesSent")],
        ),
    ];
    assert_eq!(store.count_once(&mixed).await.unwrap(), 1);
    assert_eq!(store.counter("conv#c1#d", "messages").await.unwrap(), 3);
    assert_eq!(store.counter("conv#c1#d", "messageRead").await.unwrap(), 1);
    assert_eq!(store.counter("user#a#d", "messagesSent").await.unwrap(), 3);
}

#[tokio::test]
async fn a_missing_table_is_a_permanent_error() {
    let existing = dynamo_store().await;
    let store = DynamoStore::new(existing.raw_client().clone(), TableNames::with_prefix("no-such-"));
    let err = store
        .insert_message(&message("c1", "alice", &["bob"]))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{}", err.chain());
}

/// DynamoDB throttling, from a stand-in that answers every call the way DynamoDB does when over
/// capacity: the SDK retries (3 attempts in all), then the error is retryable.
#[tokio::test]
async fn a_throttled_write_is_retried_then_reported_retryable() {
    use axum::http::{HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"Rate exceeded"}"#;
            let mut r = (StatusCode::BAD_REQUEST, body).into_response();
            r.headers_mut().insert("content-type", HeaderValue::from_static("application/x-amz-json-1.0"));
            r
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = relaychat_testkit::aws_config().await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .endpoint_url(format!("http://{addr}"))
            .build(),
    );
    let store = DynamoStore::new(client, TableNames::default());
    let err = store
        .insert_message(&message("c1", "alice", &["bob"]))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{}", err.chain());
    assert!(err.chain().contains("ProvisionedThroughputExceeded"), "{}", err.chain());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the SDK's standard retry made 3 attempts"
    );
}

/// A transaction DynamoDB cancels because one of its items was throttled (or conflicted with
/// another transaction) is retryable: before the fix it read as a permanent rejection and
/// persist-message dead-lettered a real message.
#[tokio::test]
async fn a_cancelled_transaction_is_classified_by_every_reason() {
    use relaychat_testkit::dynamo_faults::{DynamoFaults, Fault};
    let direct = dynamo_store().await;
    let proxy = DynamoFaults::start(&std::env::var("DYNAMODB_ENDPOINT").unwrap()).await;
    let store = proxy.store(direct.tables().clone()).await;
    let m = message("c1", "alice", &["bob", "carol"]);
    // Cancelled on every try the adapter makes (it retries these itself, 3 tries): retryable.
    for fault in [Fault::TransactionThrottled, Fault::TransactionConflict] {
        proxy.fail_next(Some("TransactWriteItems"), fault, 3);
        let err = store.insert_message(&m).await.unwrap_err();
        assert!(err.is_retryable(), "{fault:?}: {}", err.chain());
        assert!(err.chain().contains("TransactionCanceled"), "{}", err.chain());
    }
    assert_eq!(proxy.injected(), 6);
    // Nothing was written by the cancelled tries; the retry stores it once.
    assert!(matches!(
        store.insert_message(&m).await.unwrap(),
        Inserted::Stored { .. }
    ));
    assert_eq!(
        store.insert_message(&m).await.unwrap(),
        Inserted::Repeat,
        "then it is a repeat"
    );
    assert_eq!(unread(&direct, "bob", "c1").await, 1);
    // A condition failing on a later item (not the guard) stays permanent. (A group: a pair's
    // second conversation is no failure but the pair's first, a rule of its own.)
    let exists = Conversation {
        id: ConversationId::parse("c-dup").unwrap(),
        title: None,
        members: vec![user("alice"), user("bob"), user("carol")],
        created_by: user("alice"),
        created_at: Utc::now(),
        large: None,
    };
    direct.create_conversation(&exists, None).await.unwrap();
    let err = direct.create_conversation(&exists, None).await.unwrap_err();
    assert!(!err.is_retryable(), "{}", err.chain());
}

#[tokio::test]
async fn a_retried_create_conversation_creates_one_conversation() {
    let store = dynamo_store().await;
    let key = ClientMessageId::parse("req-1").unwrap();
    let first = Conversation {
        id: ConversationId::parse(MessageId::new().to_string()).unwrap(),
        title: Some(Title::parse("team").unwrap()),
        members: vec![user("alice"), user("bob")],
        created_by: user("alice"),
        created_at: Utc::now(),
        large: None,
    };
    let retry = Conversation {
        id: ConversationId::parse(MessageId::new().to_string()).unwrap(),
        ..first.clone()
    };
    assert_eq!(
        store.create_conversation(&first, Some(&key)).await.unwrap().id,
        first.id
    );
    let answered = store.create_conversation(&retry, Some(&key)).await.unwrap();
    assert_eq!(
        (answered.id, answered.members, answered.title),
        (first.id.clone(), first.members.clone(), first.title.clone()),
        "the retry answers with the first conversation"
    );
    assert!(store.conversation(&retry.id).await.unwrap().is_none());
    assert_eq!(store.conversations_of(&user("bob")).await.unwrap().len(), 1);
    // The key is the creator's own: another user's same key is another request.
    let carols = Conversation {
        id: ConversationId::parse(MessageId::new().to_string()).unwrap(),
        created_by: user("carol"),
        members: vec![user("carol"), user("bob")],
        ..first.clone()
    };
    assert_eq!(
        store.create_conversation(&carols, Some(&key)).await.unwrap().id,
        carols.id
    );
}

#[tokio::test]
async fn rate_limits_count_per_connection_and_window() {
    use relaychat_core::limits::{Budget, Limited};
    let store = dynamo_store().await;
    let (a, b) = (
        ConnectionId::parse("conn-a").unwrap(),
        ConnectionId::parse("conn-b").unwrap(),
    );
    store.put_connection(&a, &user("alice"), "alice").await.unwrap();
    store.put_connection(&b, &user("alice"), "alice").await.unwrap();
    let max = Limited::SendMessage.limit().max;
    // The start of a window, so the whole burst falls in it.
    let window = Limited::SendMessage.limit().window_ms;
    let t0 = chrono::DateTime::from_timestamp_millis((Utc::now().timestamp_millis() / window + 1) * window).unwrap();
    for i in 0..max {
        assert!(
            store
                .allow(Budget::Connection(&a), Limited::SendMessage, t0)
                .await
                .unwrap(),
            "send {i}"
        );
    }
    assert!(
        !store
            .allow(Budget::Connection(&a), Limited::SendMessage, t0)
            .await
            .unwrap(),
        "over the budget"
    );
    assert!(
        store
            .allow(Budget::Connection(&b), Limited::SendMessage, t0)
            .await
            .unwrap(),
        "another connection"
    );
    assert!(
        store.allow(Budget::Connection(&a), Limited::Typing, t0).await.unwrap(),
        "another action"
    );
    let next = t0 + chrono::Duration::milliseconds(window);
    assert!(
        store
            .allow(Budget::Connection(&a), Limited::SendMessage, next)
            .await
            .unwrap(),
        "a new window"
    );
    let gone = ConnectionId::parse("conn-gone").unwrap();
    assert!(
        !store
            .allow(Budget::Connection(&gone), Limited::SendMessage, t0)
            .await
            .unwrap(),
        "no such connection"
    );
}

#[tokio::test]
async fn a_connection_is_served_only_until_its_token_expires() {
    let store = dynamo_store().await;
    let conn = ConnectionId::parse("conn-exp").unwrap();
    let identity = Identity {
        user: user("alice"),
        name: DisplayName::parse("Alice").unwrap(),
        expires_at: Some(Utc::now() - chrono::Duration::seconds(1)),
    };
    store.register(&conn, &identity).await.unwrap();
    assert_eq!(store.identity_of(&conn).await.unwrap(), None);
    assert!(store.connections_of(&user("alice")).await.unwrap().is_empty());
    let fresh = Identity {
        expires_at: Some(Utc::now() + chrono::Duration::seconds(60)),
        ..identity
    };
    store.register(&conn, &fresh).await.unwrap();
    let served = store.identity_of(&conn).await.unwrap().unwrap();
    assert!(served.expires_at.unwrap() <= fresh.expires_at.unwrap());
    assert_eq!(store.connections_of(&user("alice")).await.unwrap(), vec![conn]);
}

/// A rate-limit write that took effect but whose answer was lost is retried by the SDK; the
/// retry must not read as a spent budget (before the fix a client sending once a second was
/// refused `rate_limited` after any slow call).
#[tokio::test]
async fn a_retried_rate_limit_write_does_not_refuse_a_slow_sender() {
    use relaychat_core::limits::{Budget, Limited};
    use relaychat_testkit::dynamo_faults::{DynamoFaults, Fault};
    let direct = dynamo_store().await;
    let proxy = DynamoFaults::start(&std::env::var("DYNAMODB_ENDPOINT").unwrap()).await;
    let store = proxy.store(direct.tables().clone()).await;
    let conn = ConnectionId::parse("conn-slow").unwrap();
    direct.put_connection(&conn, &user("alice"), "alice").await.unwrap();
    let window = Limited::SendMessage.limit().window_ms;
    let mut t = chrono::DateTime::from_timestamp_millis((Utc::now().timestamp_millis() / window + 1) * window).unwrap();
    for second in 0..3 {
        // The first write of each new window takes effect, and its answer is lost.
        proxy.fail_next(Some("UpdateItem"), Fault::AppliedThenLost, 1);
        assert!(
            store
                .allow(Budget::Connection(&conn), Limited::SendMessage, t)
                .await
                .unwrap(),
            "second {second}"
        );
        t += chrono::Duration::milliseconds(window);
    }
    assert!(proxy.injected() >= 3);
}
