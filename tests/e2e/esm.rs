//! The event-source-mapping emulation's failure semantics, on the real broker, with a scripted
//! function in place of a handler: partial batch failures are retried from the lowest failed
//! offset, a failing invocation is bisected, retries are bounded and what never succeeds goes to
//! the on-failure topic with the reason; offsets are committed only after all that.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::producer::{FutureProducer, FutureRecord};
use relaychat_adapters::kafka::{DLQ_REASON_HEADER, DLQ_SOURCE_HEADER, KafkaPublisher};
use relaychat_local::esm::{Esm, MappingStats};
use relaychat_local::functions::InvokeKafka;
use relaychat_local::template::{Mapping, StartingPosition};
use relaychat_schema::MskEvent;
use relaychat_schema::kafka::EventSource;
use relaychat_schema::{BatchItemFailure, KafkaBatchResponse};
use relaychat_testkit::{create_topics, kafka_settings, read_topic, unique};

/// `ok-*` succeeds; `flaky-*` fails its first two deliveries; `always-*` always fails (reported as
/// a batch item failure); `boom-*` makes the whole invocation fail (panic).
#[derive(Default)]
struct Script {
    seen: Mutex<Vec<Vec<String>>>,
    attempts: Mutex<HashMap<String, u32>>,
    done: Mutex<Vec<String>>,
}

impl InvokeKafka for Script {
    fn invoke_batch<'a>(&'a self, event: &'a MskEvent) -> BoxFuture<'a, KafkaBatchResponse> {
        Box::pin(async move {
            let mut failures = Vec::new();
            let mut batch = Vec::new();
            for p in &event.partitions {
                let mut failed = false;
                for r in p.records.iter().flatten() {
                    let value = String::from_utf8(r.value.clone()).unwrap();
                    batch.push(value.clone());
                    if value.starts_with("boom") {
                        self.seen.lock().unwrap().push(batch.clone());
                        panic!("scripted crash on {value}");
                    }
                    let attempt = {
                        let mut a = self.attempts.lock().unwrap();
                        let n = a.entry(value.clone()).or_default();
                        *n += 1;
                        *n
                    };
                    let fails = failed || value.starts_with("always") || (value.starts_with("flaky") && attempt <= 2);
                    if fails {
                        failed = true; // the rest of the partition waits, in order
                        failures.push(BatchItemFailure::new(&r.id));
                    } else {
                        self.done.lock().unwrap().push(value);
                    }
                }
            }
            self.seen.lock().unwrap().push(batch);
            KafkaBatchResponse {
                batch_item_failures: failures,
            }
        })
    }
}

async fn run(values: &[&str]) -> (Arc<Script>, MappingStats, String) {
    let topic = unique("esm");
    let dlq = format!("{topic}-dlq");
    create_topics(&[(&topic, 1), (&dlq, 1)]).await;
    let producer: FutureProducer = kafka_settings().client_config().create().unwrap();
    for v in values {
        let mut record = FutureRecord::to(&topic).key("k").payload(*v);
        if v.starts_with("untimely") {
            // A producer may set any CreateTime; this one is past what a Lambda event can carry.
            record = record.timestamp(9_000_000_000_000_000);
        }
        producer.send(record, Duration::from_secs(5)).await.unwrap();
    }
    let script = Arc::new(Script::default());
    let stats = Arc::new(Mutex::new(vec![MappingStats::default()]));
    let esm = Esm {
        mapping: Mapping {
            id: "Test".into(),
            function: "scripted".into(),
            topics: vec![topic.clone()],
            consumer_group: unique("group"),
            starting_position: StartingPosition::TrimHorizon,
            batch_size: 10,
            batching_window_ms: 500,
            report_batch_item_failures: true,
            bisect_on_error: true,
            max_retries: 2,
            on_failure_topic: Some(dlq.clone()),
            timeout_secs: 10,
        },
        function: script.clone(),
        settings: kafka_settings(),
        dead_letters: KafkaPublisher::new(&kafka_settings()).unwrap(),
        produced: tokio::sync::watch::channel(0).1,
        source: EventSource::default(),
        stats: stats.clone(),
        index: 0,
    };
    let (stop, watch) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(esm.run(watch));
    // Until every record is settled: done, or in the on-failure topic.
    let finals = values
        .iter()
        .filter(|v| !v.starts_with("always") && !v.starts_with("boom") && !v.starts_with("untimely"))
        .count();
    for _ in 0..300 {
        let committed = stats.lock().unwrap()[0].committed.values().copied().max().unwrap_or(0);
        if script.done.lock().unwrap().len() >= finals && committed == values.len() as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    task.await.unwrap().unwrap();
    let s = stats.lock().unwrap()[0].clone();
    (script, s, dlq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_failures_are_retried_from_the_lowest_failed_offset() {
    let (script, stats, dlq) = run(&["ok-1", "flaky-2", "ok-3"]).await;
    assert_eq!(
        *script.done.lock().unwrap(),
        vec!["ok-1", "flaky-2", "ok-3"],
        "each done once, in order"
    );
    let seen = script.seen.lock().unwrap().clone();
    assert_eq!(seen[0], vec!["ok-1", "flaky-2", "ok-3"]);
    assert_eq!(
        seen[1..],
        vec![vec!["flaky-2", "ok-3"], vec!["flaky-2", "ok-3"]],
        "retried from the failed record"
    );
    assert_eq!((stats.retries, stats.dead_lettered), (2, 0));
    assert_eq!(
        stats.committed.values().copied().collect::<Vec<_>>(),
        vec![3],
        "committed past the batch"
    );
    assert!(read_topic(&dlq, 0, Duration::from_millis(500)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_go_to_the_on_failure_topic_and_the_partition_moves_on() {
    let (script, stats, dlq) = run(&["ok-1", "always-2", "ok-3"]).await;
    let dead = read_topic(&dlq, 1, Duration::from_secs(10));
    let values: Vec<&[u8]> = dead.iter().map(|r| r.value.as_slice()).collect();
    // Only the poison record; the one queued behind it is retried afresh and succeeds.
    assert_eq!(values, vec![&b"always-2"[..]]);
    let reason = String::from_utf8(dead[0].header(DLQ_REASON_HEADER).unwrap().to_vec()).unwrap();
    assert!(reason.starts_with("retries exhausted after 3 attempts"), "{reason}");
    assert!(String::from_utf8_lossy(dead[0].header(DLQ_SOURCE_HEADER).unwrap()).ends_with("-0@1"));
    assert_eq!(*script.done.lock().unwrap(), vec!["ok-1", "ok-3"]);
    assert_eq!((stats.retries, stats.dead_lettered), (2, 1));
    assert_eq!(stats.committed.values().copied().collect::<Vec<_>>(), vec![3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_invocation_is_bisected_down_to_the_poison_record() {
    let (script, stats, dlq) = run(&["ok-1", "ok-2", "boom-3", "ok-4"]).await;
    // At-least-once: records handled before the crash are handled again in their half.
    let done = script.done.lock().unwrap().clone();
    assert_eq!(done.last().map(String::as_str), Some("ok-4"));
    let mut unique_done: Vec<String> = Vec::new();
    for d in done {
        if !unique_done.contains(&d) {
            unique_done.push(d);
        }
    }
    assert_eq!(
        unique_done,
        vec!["ok-1", "ok-2", "ok-4"],
        "everything but the crashing record, in order"
    );
    let dead = read_topic(&dlq, 1, Duration::from_secs(10));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value, b"boom-3");
    let reason = String::from_utf8(dead[0].header(DLQ_REASON_HEADER).unwrap().to_vec()).unwrap();
    assert!(reason.contains("panic"), "{reason}");
    assert!(
        stats.function_errors >= 3,
        "the full batch, a half, then the record alone: {}",
        stats.function_errors
    );
    assert_eq!(stats.committed.values().copied().collect::<Vec<_>>(), vec![4]);
}

/// A record the emulation cannot turn into a Lambda event fails the invocation, as a function
/// that cannot read its event would. Before the fix it became an empty event: the function
/// "succeeded" and the batch was committed unprocessed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_cannot_make_an_event_is_a_function_error_never_an_empty_event() {
    let (script, stats, dlq) = run(&["ok-1", "untimely-2", "ok-3"]).await;
    let dead = read_topic(&dlq, 1, Duration::from_secs(10));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value, b"untimely-2");
    let reason = String::from_utf8(dead[0].header(DLQ_REASON_HEADER).unwrap().to_vec()).unwrap();
    assert!(reason.contains("could not build the event"), "{reason}");
    let mut done = script.done.lock().unwrap().clone();
    done.dedup();
    assert_eq!(done, vec!["ok-1", "ok-3"], "the others were handled, in order");
    assert!(stats.function_errors >= 1);
}
