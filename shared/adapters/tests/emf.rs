//! The functions' metrics as CloudWatch reads them: a batch handled through the Kafka batch
//! driver, then the Embedded Metric Format document the Lambda entry point writes after the
//! invocation, parsed and checked field by field. (Its own test binary: the recorder is global.)

use relaychat_core::Error;
use relaychat_core::batch::{EachEvent, run_batch};
use relaychat_core::memory::{Memory, sample_message};
use relaychat_core::persist::persist_event;
use relaychat_schema::ChatEvent;
use relaychat_schema::events::TopicEvent;
use serde_json::Value;

struct Persist<'a>(&'a Memory);

impl EachEvent for Persist<'_> {
    type Event = ChatEvent;
    async fn handle_event(&self, event: &ChatEvent) -> Result<(), Error> {
        persist_event(self.0, event).await
    }
}

#[tokio::test]
async fn a_batch_is_written_as_one_emf_document_with_the_functions_dimension() {
    let collector = relaychat_adapters::telemetry::install_metrics("persist-message".into()).expect("installed");
    // GIVEN two messages (one sent a minute ago) and a malformed record
    let mem = Memory::default();
    let mut old = sample_message("c1", "alice", &["bob"]);
    old.sent_at -= chrono::Duration::minutes(1);
    let values = [
        old.to_json(),
        b"{not json".to_vec(),
        sample_message("c1", "bob", &["alice"]).to_json(),
    ];
    let records: Vec<relaychat_testkit::TestRecord<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (0, i as i64, Some(&b"c1"[..]), v.as_slice()))
        .collect();
    let event = relaychat_testkit::kafka_event("chat-messages", &records);
    // WHEN persist-message's handler runs the batch and the invocation's metrics are written
    let response = run_batch(&event, &mem, &Persist(&mem)).await;
    assert!(response.batch_item_failures.is_empty());
    let mut written = Vec::new();
    collector.flush(&mut written).expect("written");
    // THEN one EMF document: namespace, the Function dimension, each metric with its unit
    let text = String::from_utf8(written).expect("UTF-8");
    let documents: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    assert_eq!(documents.len(), 1, "{text}");
    let doc = &documents[0];
    let aws = &doc["_aws"];
    assert!(
        aws["Timestamp"].as_u64().is_some_and(|t| t > 1_700_000_000_000),
        "{doc}"
    );
    let directive = &aws["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "relaychat");
    assert_eq!(directive["Dimensions"], serde_json::json!([["Function"]]));
    assert_eq!(doc["Function"], "persist-message");
    let units: std::collections::BTreeMap<&str, &str> = directive["Metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| (m["Name"].as_str().expect("a name"), m["Unit"].as_str().unwrap_or("")))
        .collect();
    for (name, unit) in [
        ("RecordsReceived", "Count"),
        ("RecordsProcessed", "Count"),
        ("RecordsDeadLettered", "Count"),
        ("HandlerDurationPerRecordMs", "Milliseconds"),
        ("MessageAgeMs", "Milliseconds"),
    ] {
        assert_eq!(units.get(name), Some(&unit), "{name} in {doc}");
    }
    assert_eq!(
        (
            doc["RecordsReceived"].as_u64(),
            doc["RecordsProcessed"].as_u64(),
            doc["RecordsDeadLettered"].as_u64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert!(doc.get("RecordsRetried").is_none(), "nothing retried: no zero written");
    let age = |v: &Value| v.as_f64().or_else(|| v.as_array().and_then(|a| a.first()?.as_f64()));
    assert!(age(&doc["MessageAgeMs"]).is_some_and(|ms| ms >= 60_000.0), "{doc}");
    // AND nothing more until the next invocation measures something
    let mut again = Vec::new();
    collector.flush(&mut again).expect("written");
    assert!(String::from_utf8_lossy(&again).trim().is_empty());
}
