use analytics::Analytics;
use relaychat_testkit::dynamo_store;

use crate::support::*;

#[tokio::test]
async fn counts_each_record_once_across_replays() {
    let store = dynamo_store().await;
    let function = Analytics {
        store: store.clone(),
        dead_letters: dead_letters("analytics").await,
    };
    for _ in 0..2 {
        for name in ["analytics.json", "analytics-chat.json"] {
            let response = function.invoke(&sample(name)).await;
            assert!(response.batch_item_failures.is_empty(), "{name}: {response:?}");
        }
    }
    let day = "2025-11-25";
    let get = |counter: String, field: &'static str| {
        let store = store.clone();
        async move { store.counter(&counter, field).await.unwrap() }
    };
    assert_eq!(get(format!("conv#{DIRECT}#{day}"), "messages").await, 2);
    assert_eq!(get(format!("conv#{GROUP}#{day}"), "messages").await, 1);
    assert_eq!(get(format!("conv#{DIRECT}#{day}"), "conversationCreated").await, 1);
    assert_eq!(get(format!("conv#{DIRECT}#{day}"), "messageRead").await, 1);
    assert_eq!(get(format!("user#alice#{day}"), "connected").await, 1);
    assert_eq!(get(format!("user#alice#{day}"), "messagesSent").await, 1);
    assert_eq!(get(format!("user#bob#{day}"), "messagesSent").await, 1);
    assert_eq!(get(format!("user#bob#{day}"), "messageRead").await, 1);
}
