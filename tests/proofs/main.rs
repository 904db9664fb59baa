//! The proofs of relaychat's promises under faults, attacks and load (docs/reliability.md): each
//! runs the real local runtime on the real broker and DynamoDB Local, asserts its promise, and
//! prints its figures on a line starting `proof:`. `RELAYCHAT_PROOFS_LONG=1` runs the long
//! variants.

#[path = "../e2e/client.rs"]
#[allow(dead_code)]
mod client;

mod attacks;
mod capacity;
mod crash;
mod dynamo_faults;
mod group_size;
mod latency;
mod load;
mod poison;
mod round_trips;
mod storage;

/// The proofs run one at a time: each measures the machine (latency, memory, time to settle),
/// and two at once would measure each other.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The `p`th percentile (nearest rank) of sorted figures, in milliseconds.
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1].as_secs_f64() * 1000.0
}

/// True when the long variants were asked for.
#[allow(dead_code)]
pub fn long() -> bool {
    std::env::var("RELAYCHAT_PROOFS_LONG").is_ok_and(|v| v == "1" || v == "true")
}

/// Waits until every mapping of the runtime has handled all of its topics, twice in a row (a
/// handler produces before it commits, so one quiet look could miss what it is producing).
pub async fn quiet(running: &relaychat_local::runtime::Running, within: std::time::Duration) {
    let groups: Vec<(String, Vec<String>)> = running
        .stats
        .lock()
        .map(|stats| {
            stats
                .iter()
                .map(|m| (m.consumer_group.clone(), m.topics.clone()))
                .collect()
        })
        .unwrap_or_default();
    let all = || {
        groups
            .iter()
            .all(|(group, topics)| relaychat_testkit::consumed_to_end(group, topics))
    };
    let started = std::time::Instant::now();
    while !(tokio::task::block_in_place(all) && tokio::task::block_in_place(all)) {
        assert!(started.elapsed() < within, "the runtime never went quiet");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
