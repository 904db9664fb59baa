use push_notification::PushNotification;
use relaychat_core::ports::{Device, DeviceStore};
use relaychat_schema::UserId;
use relaychat_testkit::dynamo_store;
use relaychat_testkit::fcm::stand_in;

use crate::support::*;

#[tokio::test]
async fn each_device_is_pushed_once_and_unregistered_tokens_are_deleted() {
    // GIVEN carol with a live and a dead token, dave with none
    let store = dynamo_store().await;
    let carol = UserId::parse("carol").unwrap();
    for token in ["carol-phone", "dead"] {
        store
            .register_device(&Device {
                user: carol.clone(),
                token: token.into(),
                platform: "fcm".into(),
            })
            .await
            .unwrap();
    }
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
        .map(|d| d.token)
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
