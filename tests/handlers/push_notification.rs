use push_notification::PushNotification;
use relaychat_core::ports::{Device, DeviceStore};
use relaychat_schema::{DeviceToken, UserId};
use relaychat_testkit::dynamo_store;
use relaychat_testkit::fcm::stand_in;

use crate::support::*;

/// Registers these device tokens for the user.
async fn register(store: &relaychat_adapters::dynamo::DynamoStore, user: &UserId, tokens: &[&str]) {
    for token in tokens {
        store
            .register_device(&Device {
                user: user.clone(),
                token: DeviceToken::parse(*token).unwrap(),
                platform: "fcm".into(),
            })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn each_device_is_pushed_once_and_unregistered_tokens_are_deleted() {
    // GIVEN carol with a live and a dead token, dave with none
    let store = dynamo_store().await;
    let carol = UserId::parse("carol").unwrap();
    register(&store, &carol, &["carol-phone", "dead"]).await;
    let (fcm, google) = stand_in().await;
    let function = PushNotification {
        store: store.clone(),
        push: fcm,
        dead_letters: dead_letters("push-notification").await,
    };
    // WHEN the sample is handled twice
    for _ in 0..2 {
        let response = function.invoke(&sample("push-notification.json")).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    // THEN carol's phone got one push, the dead token is deleted, and both notifications are history
    let sends: Vec<String> = google
        .lock()
        .unwrap()
        .sends
        .iter()
        .map(|s| s["message"]["token"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sends.iter().filter(|t| *t == "carol-phone").count(), 1, "{sends:?}");
    let tokens: Vec<String> = store
        .devices_of(&carol)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.token.to_string())
        .collect();
    assert_eq!(tokens, vec!["carol-phone"]);
    let carol_row = store.notification(&carol, &format!("msg:{M1}")).await.unwrap().unwrap();
    assert_eq!(carol_row["state"].as_s().unwrap(), "SENT");
    assert_eq!(carol_row["devices"].as_n().unwrap(), "1");
    let dave_row = store
        .notification(&UserId::parse("dave").unwrap(), &format!("msg:{M3}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dave_row["devices"].as_n().unwrap(), "0");
}

/// Before the fix one refused token dead-lettered the whole notification, so carol's other
/// devices never got it; and any 404 deleted the token it was tried with.
#[tokio::test]
async fn a_refused_token_costs_only_its_own_device() {
    let store = dynamo_store().await;
    let carol = UserId::parse("carol").unwrap();
    register(
        &store,
        &carol,
        &["invalid-token", "lost", "other-sender", "carol-phone"],
    )
    .await;
    let (fcm, google) = stand_in().await;
    let dlq = dead_letters("push-notification").await;
    let function = PushNotification {
        store: store.clone(),
        push: fcm,
        dead_letters: dlq.clone(),
    };
    let response = function.invoke(&sample("push-notification.json")).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let reached: Vec<String> = google
        .lock()
        .unwrap()
        .sends
        .iter()
        .map(|s| s["message"]["token"].as_str().unwrap().to_owned())
        .collect();
    assert!(reached.contains(&"carol-phone".to_owned()), "{reached:?}");
    let mut left: Vec<String> = store
        .devices_of(&carol)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.token.to_string())
        .collect();
    left.sort();
    assert_eq!(
        left,
        vec!["carol-phone", "lost"],
        "refused tokens deleted, the bare 404 kept"
    );
    let row = store.notification(&carol, &format!("msg:{M1}")).await.unwrap().unwrap();
    assert_eq!(row["state"].as_s().unwrap(), "SENT");
    assert!(
        relaychat_testkit::read_topic(dlq.topic(), 0, std::time::Duration::from_secs(1)).is_empty(),
        "nothing dead-lettered"
    );
}
