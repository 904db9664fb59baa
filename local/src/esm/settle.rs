//! What an event-source mapping does with a batch until every record is settled, as Lambda does
//! for Kafka: retry from the lowest failed offset of each partition (`ReportBatchItemFailures`),
//! halve the batch on a function error (`BisectBatchOnFunctionError`), back off exponentially,
//! and after `MaximumRetryAttempts` send the first record of each failing partition to the
//! on-failure destination so one poison record costs no good ones. Pure policy: the invocation,
//! the destination and the waiting are the [`Target`]'s, so every rule is unit-tested without a
//! broker.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use relaychat_schema::{DecodedRecord, RecordId};

pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every record done.
    Success,
    /// The function answered with these failed items (`topic-partition` → lowest failed offset).
    PartialFailure(HashMap<String, i64>),
    /// The invocation itself failed (panic, timeout, an event that could not be built).
    FunctionError(String),
}

/// The mapping's retry settings (template: `MaximumRetryAttempts`, `BisectBatchOnFunctionError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// -1: retry until the records expire (here: without end).
    pub max_retries: i64,
    pub bisect_on_error: bool,
}

/// Per `topic-partition`, the first record a batch could not settle: it and every later record of
/// its partition are to be read again, not committed.
pub type Unsettled = HashMap<String, RecordId>;

/// A record as settling sees it: where it is from.
pub trait Identified: Clone + Send + Sync {
    fn id(&self) -> &RecordId;
}

impl Identified for DecodedRecord {
    fn id(&self) -> &RecordId {
        &self.id
    }
}

/// What settling needs from the world.
pub trait Target<R>: Sync {
    fn invoke(&self, records: &[R]) -> impl Future<Output = Outcome> + Send;
    /// Sends each record with the reason to the on-failure destination; `false` when it could not
    /// (down for too long, or the mapping is stopping): nothing is dropped, the records are read
    /// again.
    fn give_up(&self, records: &[R], reason: &str) -> impl Future<Output = bool> + Send;
    /// Waits before a retry; `false` when the mapping is stopping (retry after the restart).
    fn back_off(&self, wait: Duration) -> impl Future<Output = bool> + Send;
}

/// The wait before retry number `attempts + 1`: 200 ms doubling, at most 5 s.
pub fn backoff(attempts: i64) -> Duration {
    FIRST_BACKOFF.saturating_mul(1 << attempts.clamp(0, 5)).min(MAX_BACKOFF)
}

/// Runs the batch to completion; returns what could not be settled (see [`Unsettled`]).
pub async fn settle<R: Identified>(policy: Policy, target: &impl Target<R>, batch: Vec<R>) -> Unsettled {
    let mut unsettled = Unsettled::new();
    // A stack: the front half of a bisected batch is settled before the back half.
    let mut queue = vec![(batch, 0_i64)];
    while let Some((records, attempts)) = queue.pop() {
        let records: Vec<R> = records
            .into_iter()
            .filter(|r| !unsettled.contains_key(&r.id().topic_partition()))
            .collect();
        if records.is_empty() {
            continue;
        }
        let (failed, reason) = match target.invoke(&records).await {
            Outcome::Success => continue,
            Outcome::PartialFailure(lowest) => {
                // Retried, per partition, from the lowest failed offset; the rest succeeded.
                let failed = records
                    .into_iter()
                    .filter(|r| {
                        lowest
                            .get(&r.id().topic_partition())
                            .is_some_and(|low| r.id().offset >= *low)
                    })
                    .collect();
                (failed, "the function reported the records failed".to_owned())
            }
            Outcome::FunctionError(_) if policy.bisect_on_error && records.len() > 1 => {
                let mut front = records;
                let back = front.split_off(front.len() / 2);
                queue.push((back, attempts));
                queue.push((front, attempts));
                continue;
            }
            Outcome::FunctionError(reason) => (records, reason),
        };
        if policy.max_retries >= 0 && attempts >= policy.max_retries {
            let reason = format!("retries exhausted after {} attempts: {reason}", attempts + 1);
            let (firsts, rest) = first_of_each_partition(failed);
            if target.give_up(&firsts, &reason).await {
                // The records behind a poison one get a fresh set of attempts.
                queue.push((rest, 0));
            } else {
                leave(&mut unsettled, &firsts);
            }
        } else if target.back_off(backoff(attempts)).await {
            queue.push((failed, attempts + 1));
        } else {
            leave(&mut unsettled, &failed);
        }
    }
    unsettled
}

/// The first record of each partition, and the others in order.
fn first_of_each_partition<R: Identified>(records: Vec<R>) -> (Vec<R>, Vec<R>) {
    let (mut firsts, mut rest): (Vec<R>, Vec<R>) = (Vec::new(), Vec::new());
    for r in records {
        if firsts
            .iter()
            .any(|f| f.id().topic_partition() == r.id().topic_partition())
        {
            rest.push(r);
        } else {
            firsts.push(r);
        }
    }
    (firsts, rest)
}

/// Marks each record's partition unsettled from its lowest offset on.
fn leave<R: Identified>(unsettled: &mut Unsettled, records: &[R]) {
    for r in records {
        let id = r.id();
        let first = unsettled.entry(id.topic_partition()).or_insert_with(|| id.clone());
        if id.offset < first.offset {
            *first = id.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn rec(partition: i32, offset: i64, value: &str) -> DecodedRecord {
        let id = RecordId {
            topic: "t".into(),
            partition,
            offset,
        };
        DecodedRecord::new(id, None, value.as_bytes())
    }

    fn values(records: &[DecodedRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.value).into_owned())
            .collect()
    }

    /// Values decide: `ok` succeeds; `poison` is reported failed every time; `crash` fails the
    /// whole invocation; `flaky` fails its first invocation only.
    #[derive(Default)]
    struct Script {
        invoked: Mutex<Vec<Vec<String>>>,
        given_up: Mutex<Vec<(Vec<String>, String)>>,
        waits: Mutex<Vec<Duration>>,
        destination_down: bool,
        stopping: bool,
    }

    impl Target<DecodedRecord> for Script {
        async fn invoke(&self, records: &[DecodedRecord]) -> Outcome {
            let seen = values(records);
            let first_time = !self.invoked.lock().unwrap().iter().flatten().any(|v| v == "flaky");
            self.invoked.lock().unwrap().push(seen.clone());
            if seen.iter().any(|v| v == "crash") {
                return Outcome::FunctionError("crashed".into());
            }
            let mut lowest = HashMap::new();
            for r in records {
                let v = String::from_utf8_lossy(&r.value);
                if v == "poison" || (v == "flaky" && first_time) {
                    let low = lowest.entry(r.id.topic_partition()).or_insert(r.id.offset);
                    *low = (*low).min(r.id.offset);
                }
            }
            if lowest.is_empty() {
                Outcome::Success
            } else {
                Outcome::PartialFailure(lowest)
            }
        }
        async fn give_up(&self, records: &[DecodedRecord], reason: &str) -> bool {
            self.given_up.lock().unwrap().push((values(records), reason.to_owned()));
            !self.destination_down
        }
        async fn back_off(&self, wait: Duration) -> bool {
            self.waits.lock().unwrap().push(wait);
            !self.stopping
        }
    }

    const RETRY_TWICE: Policy = Policy {
        max_retries: 2,
        bisect_on_error: true,
    };

    #[tokio::test]
    async fn a_partial_failure_is_retried_from_the_lowest_failed_offset_of_its_partition() {
        let script = Script::default();
        let batch = vec![rec(0, 1, "ok"), rec(0, 2, "flaky"), rec(0, 3, "ok"), rec(1, 1, "ok")];
        let unsettled = settle(RETRY_TWICE, &script, batch).await;
        assert!(unsettled.is_empty());
        let invoked = script.invoked.lock().unwrap().clone();
        assert_eq!(invoked[1], vec!["flaky", "ok"], "partition 1 and offset 1 were done");
        assert_eq!(*script.waits.lock().unwrap(), vec![FIRST_BACKOFF]);
    }

    #[tokio::test]
    async fn a_poison_record_alone_goes_to_the_destination_and_the_rest_start_afresh() {
        let script = Script::default();
        let batch = vec![
            rec(0, 1, "poison"),
            rec(0, 2, "ok"),
            rec(1, 5, "poison"),
            rec(1, 6, "ok"),
        ];
        let unsettled = settle(RETRY_TWICE, &script, batch).await;
        assert!(unsettled.is_empty());
        let given_up = script.given_up.lock().unwrap().clone();
        assert_eq!(given_up.len(), 1);
        assert_eq!(given_up[0].0, vec!["poison", "poison"], "the first of each partition");
        assert!(
            given_up[0].1.starts_with("retries exhausted after 3 attempts"),
            "{}",
            given_up[0].1
        );
        let invoked = script.invoked.lock().unwrap().clone();
        assert_eq!(invoked.last().unwrap(), &vec!["ok", "ok"]);
        let waits = script.waits.lock().unwrap().clone();
        assert_eq!(waits, vec![backoff(0), backoff(1)], "two retries, growing");
    }

    #[tokio::test]
    async fn a_function_error_halves_the_batch_front_half_first() {
        let script = Script::default();
        let batch = vec![rec(0, 1, "ok"), rec(0, 2, "ok"), rec(0, 3, "crash"), rec(0, 4, "ok")];
        let policy = Policy {
            max_retries: 0,
            bisect_on_error: true,
        };
        let unsettled = settle(policy, &script, batch).await;
        assert!(unsettled.is_empty());
        let invoked = script.invoked.lock().unwrap().clone();
        assert_eq!(
            invoked,
            vec![
                vec!["ok", "ok", "crash", "ok"],
                vec!["ok", "ok"],
                vec!["crash", "ok"],
                vec!["crash"],
                vec!["ok"]
            ]
        );
        let given_up = script.given_up.lock().unwrap().clone();
        assert_eq!(
            (given_up[0].0.clone(), given_up[0].1.as_str()),
            (vec!["crash".to_owned()], "retries exhausted after 1 attempts: crashed")
        );
    }

    #[tokio::test]
    async fn when_the_destination_is_down_the_partition_is_left_to_be_read_again() {
        let script = Script {
            destination_down: true,
            ..Script::default()
        };
        let batch = vec![rec(0, 7, "poison"), rec(0, 8, "ok"), rec(1, 1, "ok")];
        let unsettled = settle(RETRY_TWICE, &script, batch).await;
        assert_eq!(unsettled.len(), 1);
        assert_eq!(
            unsettled["t-0"].offset, 7,
            "from the poison record on; partition 1 is done"
        );
        assert_eq!(script.given_up.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_stopping_mapping_leaves_what_failed_unsettled_instead_of_waiting() {
        let script = Script {
            stopping: true,
            ..Script::default()
        };
        let batch = vec![rec(0, 1, "ok"), rec(0, 2, "poison"), rec(0, 3, "ok")];
        let unsettled = settle(RETRY_TWICE, &script, batch).await;
        assert_eq!(unsettled["t-0"].offset, 2);
        assert_eq!(script.invoked.lock().unwrap().len(), 1, "no retry while stopping");
        assert!(script.given_up.lock().unwrap().is_empty());
    }

    #[test]
    fn backoff_doubles_from_200_ms_to_at_most_5_s() {
        let waits: Vec<u64> = (0..8).map(|a| backoff(a).as_millis() as u64).collect();
        assert_eq!(waits, vec![200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    }
}
