//! What the functions measure, through the `metrics` facade: the Lambda entry points write it as
//! CloudWatch Embedded Metric Format, one document per invocation, with the function's name as a
//! dimension (docs/operations.md lists them). Without a recorder (tests, the local runtime) each
//! call does nothing.

use chrono::{DateTime, Utc};

/// Records in an invocation's batch.
pub const RECORDS_RECEIVED: &str = "RecordsReceived";
/// Records handled (stored, delivered, counted…).
pub const RECORDS_PROCESSED: &str = "RecordsProcessed";
/// Records handed back for a retry (a retryable failure, and every later one of its partition).
pub const RECORDS_RETRIED: &str = "RecordsRetried";
/// Records sent to the function's dead-letter topic.
pub const RECORDS_DEAD_LETTERED: &str = "RecordsDeadLettered";
/// How long the handler took for one record, on average over the invocation's batch.
pub const HANDLER_DURATION_PER_RECORD: &str = "HandlerDurationPerRecordMs";
/// Now − `sentAt` of the oldest message of the batch, when the function got it: at persist-message,
/// how far storing lags; at deliver-message, how far delivery does.
pub const MESSAGE_AGE: &str = "MessageAgeMs";
/// Push notifications FCM took, and those it did not (retryable or refused).
pub const PUSHES_SENT: &str = "PushesSent";
pub const PUSHES_FAILED: &str = "PushesFailed";
/// `$connect`s refused for a missing or invalid token.
pub const CONNECTS_REFUSED: &str = "ConnectsRefused";

/// Every metric (the template's dashboard shows each: a test holds them together).
pub const ALL: [&str; 9] = [
    RECORDS_RECEIVED,
    RECORDS_PROCESSED,
    RECORDS_RETRIED,
    RECORDS_DEAD_LETTERED,
    HANDLER_DURATION_PER_RECORD,
    MESSAGE_AGE,
    PUSHES_SENT,
    PUSHES_FAILED,
    CONNECTS_REFUSED,
];

/// Every metric with its unit, for the recorder to write (EMF wants the unit on each): the
/// durations in milliseconds, the rest counts.
pub fn describe() {
    for name in ALL {
        if name.ends_with("Ms") {
            metrics::describe_histogram!(name, metrics::Unit::Milliseconds, "");
        } else {
            metrics::describe_counter!(name, metrics::Unit::Count, "");
        }
    }
}

/// What one batch came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub received: u64,
    pub retried: u64,
    pub dead_lettered: u64,
}

pub fn batch(outcome: BatchOutcome, duration: std::time::Duration) {
    let processed = outcome.received.saturating_sub(outcome.retried + outcome.dead_lettered);
    metrics::counter!(RECORDS_RECEIVED).increment(outcome.received);
    metrics::counter!(RECORDS_PROCESSED).increment(processed);
    metrics::counter!(RECORDS_RETRIED).increment(outcome.retried);
    metrics::counter!(RECORDS_DEAD_LETTERED).increment(outcome.dead_lettered);
    if outcome.received > 0 {
        metrics::histogram!(HANDLER_DURATION_PER_RECORD)
            .record(duration.as_secs_f64() * 1000.0 / outcome.received as f64);
    }
}

/// The age of the oldest message a batch held.
pub fn oldest_message(sent_at: DateTime<Utc>, now: DateTime<Utc>) {
    metrics::histogram!(MESSAGE_AGE).record((now - sent_at).num_milliseconds().max(0) as f64);
}

pub fn push(sent: bool) {
    metrics::counter!(if sent { PUSHES_SENT } else { PUSHES_FAILED }).increment(1);
}

pub fn connect_refused() {
    metrics::counter!(CONNECTS_REFUSED).increment(1);
}
