//! analytics: counters per day per conversation and per user. Each record is counted once by its
//! own identity (its message or event id), remembered atomically with its increments, so neither
//! a replay nor a recreated topic (offsets starting again at 0) can count twice or skip.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use relaychat_schema::protocol::DailyStats;
use relaychat_schema::{
    AnalyticsEvent, AnalyticsKind, Change, ChatEvent, ChatMessage, ConversationId, DecodedRecord, MessageChange,
    MessageId, SchemaError,
};
use tracing::{debug, warn};

use crate::Error;
use crate::batch::{FromRecord, Parsed};
use crate::ports::{AnalyticsStore, Counted, CounterKey};

/// Most items (records remembered plus counter rows) in one atomic apply: DynamoDB transactions
/// take 100.
pub const MAX_ITEMS_PER_APPLY: usize = 90;

fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// A conversation's counter row of one day.
fn conversation_row(conversation: &ConversationId, day: &str) -> String {
    format!("conv#{conversation}#{day}")
}

/// A conversation's counters for the `days` days up to `today`, oldest first (zeros where
/// nothing was counted).
pub async fn conversation_stats(
    store: &impl AnalyticsStore,
    conversation: &ConversationId,
    days: u32,
    today: DateTime<Utc>,
) -> Result<Vec<DailyStats>, Error> {
    let dates: Vec<String> = (0..i64::from(days))
        .rev()
        .map(|back| day(today - chrono::Duration::days(back)))
        .collect();
    let rows: Vec<String> = dates.iter().map(|d| conversation_row(conversation, d)).collect();
    let counters = store.counters(&rows).await?;
    Ok(dates
        .into_iter()
        .zip(rows)
        .map(|(date, row)| {
            let fields = counters.get(&row);
            let field = |name: &str| fields.and_then(|f| f.get(name)).copied().unwrap_or(0);
            DailyStats {
                date,
                messages: field("messages"),
                reads: field(AnalyticsKind::MessageRead.as_str()),
                edits: field(EDITS),
                deletions: field(DELETIONS),
            }
        })
        .collect())
}

fn key(counter: String, field: &str) -> CounterKey {
    CounterKey {
        counter,
        field: field.to_owned(),
    }
}

/// The counters a chat message adds to.
pub fn counters_for_message(m: &ChatMessage) -> Vec<CounterKey> {
    let d = day(m.sent_at);
    vec![
        key(conversation_row(&m.conversation_id, &d), "messages"),
        key(format!("user#{}#{d}", m.sender_id), "messagesSent"),
    ]
}

/// The fields edits and deletions count in (a conversation's and a user's rows).
const EDITS: &str = "edits";
const DELETIONS: &str = "deletions";

/// What a change to a message counts, under its own identity: each edit once, and a message's
/// deletion once however often it was asked for.
pub fn counted_change(c: &MessageChange) -> Counted {
    let d = day(c.changed_at);
    let (id, field) = match &c.change {
        Change::Edited { .. } => (
            format!("edit#{}#{}", c.message_id, c.changed_at.timestamp_micros()),
            EDITS,
        ),
        Change::Deleted => (format!("deletion#{}", c.message_id), DELETIONS),
    };
    Counted {
        id,
        keys: vec![
            key(conversation_row(&c.conversation_id, &d), field),
            key(format!("user#{}#{d}", c.sender_id), field),
        ],
    }
}

/// The counters an analytics event adds to.
pub fn counters_for_event(e: &AnalyticsEvent) -> Vec<CounterKey> {
    let d = day(e.at);
    let mut keys = vec![key(format!("user#{}#{d}", e.user_id), e.kind.as_str())];
    if let Some(conv) = &e.conversation_id {
        keys.push(key(conversation_row(conv, &d), e.kind.as_str()));
    }
    keys
}

/// What analytics reads from a record: a chat message or a change to one (from `chat-messages`)
/// or an analytics event (from `analytics-events`), told apart by shape, so renamed topics need
/// no configuration.
#[derive(Debug, Clone)]
pub enum Countable {
    Message(ChatMessage),
    Change(MessageChange),
    Event(AnalyticsEvent),
}

impl FromRecord for Countable {
    fn from_record(record: &DecodedRecord) -> Result<Self, SchemaError> {
        match record.parse::<AnalyticsEvent>() {
            Ok(event) => Ok(Self::Event(event)),
            // Only analytics events carry an `eventId`: that one was a malformed event.
            Err(e)
                if serde_json::from_slice::<serde_json::Value>(&record.value)
                    .is_ok_and(|v| v.get("eventId").is_some()) =>
            {
                Err(e)
            }
            Err(_) => record.parse::<ChatEvent>().map(|event| match event {
                ChatEvent::Message(m) => Self::Message(m),
                ChatEvent::Change(c) => Self::Change(c),
            }),
        }
    }
    fn message_id(&self) -> Option<MessageId> {
        match self {
            Self::Message(m) => Some(m.message_id),
            Self::Change(c) => Some(c.message_id),
            Self::Event(_) => None,
        }
    }
    fn conversation_id(&self) -> Option<&ConversationId> {
        match self {
            Self::Message(m) => Some(&m.conversation_id),
            Self::Change(c) => Some(&c.conversation_id),
            Self::Event(e) => e.conversation_id.as_ref(),
        }
    }
    fn sent_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Message(m) => Some(m.sent_at),
            _ => None,
        }
    }
}

impl Countable {
    /// deliver-message's continuation of a large group's fan-out, not a new record.
    pub fn is_fanout_continuation(&self) -> bool {
        match self {
            Self::Message(m) => m.fanout_after.is_some(),
            Self::Change(c) => c.fanout_after.is_some(),
            Self::Event(_) => false,
        }
    }
}

/// What a record counts, under its own identity.
pub fn counted(countable: &Countable) -> Counted {
    match countable {
        Countable::Message(m) => Counted {
            id: format!("message#{}", m.message_id),
            keys: counters_for_message(m),
        },
        Countable::Change(c) => counted_change(c),
        Countable::Event(e) => Counted {
            id: format!("event#{}", e.event_id),
            keys: counters_for_event(e),
        },
    }
}

/// Counts a partition's events in as few atomic applies as fit (each at most
/// `MAX_ITEMS_PER_APPLY` items). `Err((i, e))`: the applies before event `i` are done; from `i`
/// on nothing was counted, to be retried.
pub async fn count_events<S: AnalyticsStore>(
    store: &S,
    events: &[Parsed<'_, Countable>],
) -> Result<(), (usize, Error)> {
    let mut chunk = Chunk::default();
    for (index, parsed) in events.iter().enumerate() {
        if parsed.event.is_fanout_continuation() {
            continue; // the rest of a large group's fan-out: counted when first read
        }
        let c = counted(&parsed.event);
        // The same identity twice in one apply (a message published again, a deletion asked
        // for twice) counts once; DynamoDB would also refuse a transaction writing one item twice.
        if chunk.records.iter().any(|r| r.id == c.id) {
            continue;
        }
        if !chunk.records.is_empty() && chunk.items_with(&c) > MAX_ITEMS_PER_APPLY {
            apply(store, std::mem::take(&mut chunk)).await?;
        }
        chunk.first.get_or_insert(index);
        chunk.rows.extend(c.keys.iter().map(|k| k.counter.clone()));
        chunk.records.push(c);
    }
    apply(store, chunk).await
}

/// Records gathered for one atomic apply.
#[derive(Default)]
struct Chunk {
    /// Index (in the events) of its first record.
    first: Option<usize>,
    records: Vec<Counted>,
    rows: BTreeSet<String>,
}

impl Chunk {
    fn items_with(&self, c: &Counted) -> usize {
        let new_rows = c.keys.iter().filter(|k| !self.rows.contains(&k.counter)).count();
        self.records.len() + 1 + self.rows.len() + new_rows
    }
}

/// Applies a chunk; on failure, the index of its first record and why.
async fn apply<S: AnalyticsStore>(store: &S, chunk: Chunk) -> Result<(), (usize, Error)> {
    let Some(first) = chunk.first else { return Ok(()) };
    match store.count_once(&chunk.records).await {
        Ok(new) => {
            if new < chunk.records.len() {
                debug!(
                    repeats = chunk.records.len() - new,
                    "records counted before were skipped"
                );
            }
            Ok(())
        }
        Err(e) => {
            warn!(error = %e.chain(), "could not apply counters; will retry");
            Err((first, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{RecordHandler, run_batch};
    use crate::memory::{Memory, sample_message};
    use relaychat_schema::MskEvent;
    use relaychat_schema::events::TopicEvent;
    use relaychat_schema::kafka::{EventSource, msk_event};
    use relaychat_schema::{KafkaBatchResponse, RecordId};

    /// The analytics function's handler, as its crate wires it.
    struct Counter<'a>(&'a Memory);

    impl RecordHandler for Counter<'_> {
        type Event = Countable;
        async fn handle(&self, events: &[Parsed<'_, Countable>]) -> Result<(), (usize, Error)> {
            count_events(self.0, events).await
        }
    }

    async fn count_batch(event: &MskEvent, mem: &Memory) -> KafkaBatchResponse {
        run_batch(event, mem, &Counter(mem)).await
    }

    /// Every sample message sent on one fixed day, so no test depends on the clock (or midnight).
    const NOON_DAY: &str = "2026-01-02";

    fn noon(mut m: ChatMessage) -> ChatMessage {
        m.sent_at = chrono::DateTime::parse_from_rfc3339("2026-01-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        m
    }

    fn event_of(values: &[Vec<u8>], first_offset: i64) -> MskEvent {
        let records: Vec<DecodedRecord> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let id = RecordId {
                    topic: "chat-messages".into(),
                    partition: 0,
                    offset: first_offset + i as i64,
                };
                DecodedRecord::new(id, Some(b"c1"), v)
            })
            .collect();
        msk_event(&records, &EventSource::default()).unwrap()
    }

    #[tokio::test]
    async fn counts_once_even_when_the_batch_is_replayed_or_overlaps() {
        // GIVEN three messages in c1, two from alice, one from bob, and one malformed record
        let mem = Memory::default();
        let m1 = noon(sample_message("c1", "alice", &["bob"]));
        let m2 = noon(sample_message("c1", "bob", &["alice"]));
        let m3 = noon(sample_message("c1", "alice", &["bob"]));
        let values = vec![m1.to_json(), b"{not json".to_vec(), m2.to_json(), m3.to_json()];
        let d = day(m1.sent_at);
        // WHEN the first two records are counted, then the whole batch, then the whole batch again
        let first = count_batch(&event_of(&values[..2], 0), &mem).await;
        let second = count_batch(&event_of(&values, 0), &mem).await;
        let third = count_batch(&event_of(&values, 0), &mem).await;
        // THEN every message is counted exactly once and the malformed one is dead-lettered once
        assert!(first.batch_item_failures.is_empty() && second.batch_item_failures.is_empty());
        assert!(third.batch_item_failures.is_empty());
        assert_eq!(mem.counter(&format!("conv#c1#{d}"), "messages"), 3);
        assert_eq!(mem.counter(&format!("user#alice#{d}"), "messagesSent"), 2);
        assert_eq!(mem.counter(&format!("user#bob#{d}"), "messagesSent"), 1);
        assert_eq!(mem.dead_letters().len(), 3, "dead-lettered on each read: at least once");
    }

    #[tokio::test]
    async fn edits_count_each_and_a_deletion_once_and_the_stats_show_them() {
        // GIVEN a message, two edits of it and its deletion asked for twice, each batch replayed
        let mem = Memory::default();
        let m = noon(sample_message("c1", "alice", &["bob"]));
        let change = |change: Change, secs: i64| crate::memory::sample_change(&m, change, secs);
        let edit = |secs| {
            change(
                Change::Edited {
                    content: relaychat_schema::MessageContent::parse("again").unwrap(),
                },
                secs,
            )
            .to_json()
        };
        let values = vec![
            m.to_json(),
            edit(1),
            edit(2),
            change(Change::Deleted, 3).to_json(),
            change(Change::Deleted, 4).to_json(),
        ];
        for _ in 0..2 {
            let resp = count_batch(&event_of(&values, 0), &mem).await;
            assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
        }
        // THEN one message, two edits and one deletion, in the conversation's stats of that day
        let stats = conversation_stats(&mem, &m.conversation_id, 1, m.sent_at)
            .await
            .unwrap();
        assert_eq!((stats[0].messages, stats[0].edits, stats[0].deletions), (1, 2, 1));
        assert_eq!(mem.counter(&format!("user#alice#{NOON_DAY}"), "edits"), 2);
        assert!(mem.dead_letters().is_empty());
    }

    #[tokio::test]
    async fn a_recreated_topic_is_counted_from_its_first_record() {
        // GIVEN three messages counted at offsets 0..3
        let mem = Memory::default();
        let old: Vec<Vec<u8>> = (0..3)
            .map(|_| noon(sample_message("c1", "alice", &["bob"])).to_json())
            .collect();
        count_batch(&event_of(&old, 0), &mem).await;
        // WHEN the topic is recreated (the local broker restarts) and new messages come at 0..2
        let new: Vec<Vec<u8>> = (0..2)
            .map(|_| noon(sample_message("c1", "alice", &["bob"])).to_json())
            .collect();
        let resp = count_batch(&event_of(&new, 0), &mem).await;
        // THEN they are counted: offsets are not identities
        assert!(resp.batch_item_failures.is_empty());
        let d = NOON_DAY;
        assert_eq!(mem.counter(&format!("conv#c1#{d}"), "messages"), 5);
    }

    #[tokio::test]
    async fn a_failing_store_reports_the_partition_for_retry() {
        let mem = Memory::default();
        mem.fail_counters(true);
        let values = vec![noon(sample_message("c1", "alice", &["bob"])).to_json()];
        let resp = count_batch(&event_of(&values, 5), &mem).await;
        assert_eq!(resp.batch_item_failures.len(), 1);
        assert_eq!(resp.batch_item_failures[0].item_identifier.offset, 5);
    }

    #[tokio::test]
    async fn many_conversations_are_split_into_several_atomic_applies() {
        let mem = Memory::default();
        let values: Vec<Vec<u8>> = (0..120)
            .map(|i| noon(sample_message(&format!("c{i}"), "alice", &["bob"])).to_json())
            .collect();
        let resp = count_batch(&event_of(&values, 0), &mem).await;
        assert!(resp.batch_item_failures.is_empty());
        let d = NOON_DAY;
        assert_eq!(mem.counter(&format!("user#alice#{d}"), "messagesSent"), 120);
        assert!(mem.largest_apply() <= MAX_ITEMS_PER_APPLY);
    }
}
