//! update-status: receipts move forward only (SENT → DELIVERED → READ); each move is told to the
//! message's sender. READ is by position: "read up to X" covers every earlier message from others,
//! worked through in pages with batched receipt writes, and each sender hears it once.

use std::collections::BTreeSet;

use relaychat_schema::frames::ServerFrame;
use relaychat_schema::{ConversationId, DeliveryStatus, MessageId, MessageStatusUpdate, SchemaError, Topics, UserId};
use tracing::{debug, info};

use crate::Error;
use crate::fanout::post_to_user;
use crate::ports::{
    ConnectionDirectory, ConversationStore, FramePoster, MessageStore, PublishEvent, Publisher, ReadState, ReceiptMove,
    Receipts,
};

/// Messages read from storage at a time while working through a READ.
pub const READ_PAGE: usize = 250;
/// Pages one invocation works through before it hands the rest on (bounded work per record, so
/// a reader's backlog of thousands never times out and stalls the partition).
pub const READ_PAGES_PER_UPDATE: usize = 8;

/// What changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusChange {
    /// DELIVERED: the receipt that moved. READ: the messages marked read by this invocation.
    pub advanced: Vec<MessageId>,
    /// READ: the senders told "read up to".
    pub told: Vec<UserId>,
    /// READ: more remained; the update was published again to carry on from where this stopped.
    pub continued: bool,
}

/// The ports update-status works with.
pub struct StatusPorts<'a, S, D, F, P> {
    pub store: &'a S,
    /// Whose connections the frames go to (remembered for a moment: `recent`).
    pub directory: &'a D,
    pub poster: &'a F,
    pub publisher: &'a P,
    pub topics: &'a Topics,
    /// When large groups last had a read-by frame.
    pub read_by: &'a ReadByFrames,
}

pub async fn apply_status_update<S, D, F, P>(
    ports: &StatusPorts<'_, S, D, F, P>,
    update: &MessageStatusUpdate,
) -> Result<StatusChange, Error>
where
    S: MessageStore + ReadState + Receipts + ConversationStore,
    D: ConnectionDirectory,
    F: FramePoster,
    P: Publisher,
{
    match update.status {
        DeliveryStatus::Delivered => {
            let sender = update.sender_id.as_ref().ok_or_else(|| {
                Error::Invalid(SchemaError::InvalidField {
                    field: "senderId",
                    reason: "required for DELIVERED".into(),
                })
            })?;
            deliver_receipt(ports, update, sender).await
        }
        DeliveryStatus::Read if update.large_group => read_in_large_group(ports, update).await,
        DeliveryStatus::Read => mark_read_up_to(ports, update).await,
        DeliveryStatus::Sent => Err(Error::Invalid(SchemaError::InvalidField {
            field: "status",
            reason: "SENT is where receipts start, not an update".into(),
        })),
    }
}

/// How often one execution environment tells a large group's sender how many have read: read-by
/// counts, aggregated, instead of a frame per reader (`history` has the exact count any time).
pub const READ_BY_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// When each large group last had a read-by frame from this execution environment.
pub struct ReadByFrames(crate::bounded::BoundedMap<ConversationId, tokio::time::Instant>);

impl Default for ReadByFrames {
    fn default() -> Self {
        Self(crate::bounded::BoundedMap::new())
    }
}

impl ReadByFrames {
    /// True (and noted) when the conversation has had no read-by frame for `READ_BY_EVERY`.
    fn due(&self, conversation: &ConversationId) -> bool {
        let now = tokio::time::Instant::now();
        self.0
            .put_unless(conversation.clone(), now, |at| now.duration_since(*at) < READ_BY_EVERY)
    }
}

/// READ in a large group: the reader's position moves (no receipt per message); now and then the
/// sender of the message it moved to hears how many have read up to it.
async fn read_in_large_group<S, D, F, P>(
    ports: &StatusPorts<'_, S, D, F, P>,
    update: &MessageStatusUpdate,
) -> Result<StatusChange, Error>
where
    S: ReadState + ConversationStore,
    D: ConnectionDirectory,
    F: FramePoster,
{
    let moved = ports
        .store
        .advance_read_position(&update.user_id, &update.conversation_id, update.message_id)
        .await?;
    let mut change = StatusChange::default();
    let Some(place) = moved else {
        debug!(reader = %update.user_id, "large group: read already");
        return Ok(change);
    };
    change.advanced.push(place.message);
    if place.sender == update.user_id || !ports.read_by.due(&update.conversation_id) {
        return Ok(change);
    }
    let counts = ports
        .store
        .read_by(&update.conversation_id, &place.sender, &[place.message])
        .await?;
    let Some(read_by) = counts.get(&place.message).copied() else {
        return Ok(change);
    };
    let frame = ServerFrame::ReadBy {
        conversation_id: &update.conversation_id,
        message_id: place.message,
        read_by,
    };
    post_to_user(ports.directory, ports.poster, &place.sender, &frame.to_bytes()).await?;
    change.told.push(place.sender);
    Ok(change)
}

/// DELIVERED: the receipt moves forward, and the sender is told. A repeat tells the sender again
/// (a frame lost to a failed post on the first try is not lost for good); a late DELIVERED after
/// READ tells nothing.
async fn deliver_receipt<S, D, F, P>(
    ports: &StatusPorts<'_, S, D, F, P>,
    update: &MessageStatusUpdate,
    sender: &UserId,
) -> Result<StatusChange, Error>
where
    S: Receipts,
    D: ConnectionDirectory,
    F: FramePoster,
{
    let moved = ports
        .store
        .advance_receipt(
            update.message_id,
            &update.conversation_id,
            &update.user_id,
            update.status,
            update.at,
        )
        .await?;
    let mut change = StatusChange::default();
    if moved == ReceiptMove::Beyond {
        return Ok(change);
    }
    let frame = ServerFrame::Status {
        message_id: update.message_id,
        conversation_id: &update.conversation_id,
        user_id: &update.user_id,
        status: update.status,
        at: update.at,
        up_to: false,
    };
    post_to_user(ports.directory, ports.poster, sender, &frame.to_bytes()).await?;
    if moved == ReceiptMove::Moved {
        change.advanced.push(update.message_id);
    }
    Ok(change)
}

/// READ up to `messageId`: page through the messages after where the reader got to, mark those
/// from others READ in batches, tell each of their senders once "read up to", and then move the
/// cursor (which recounts unread). Frames go out before the progress they report is saved, so a
/// failed push is retried, never lost. A backlog too long for one invocation is saved as progress
/// and the update published again to carry on.
async fn mark_read_up_to<S, D, F, P>(
    ports: &StatusPorts<'_, S, D, F, P>,
    update: &MessageStatusUpdate,
) -> Result<StatusChange, Error>
where
    S: MessageStore + ReadState + Receipts,
    D: ConnectionDirectory,
    F: FramePoster,
    P: Publisher,
{
    let (store, reader, conversation, up_to) =
        (ports.store, &update.user_id, &update.conversation_id, update.message_id);
    let position = store.read_position(reader, conversation).await?;
    if position.cursor.is_some_and(|c| c >= up_to) {
        debug!(%reader, "already read up to here");
        return Ok(StatusChange::default());
    }
    let mut change = StatusChange::default();
    let mut senders = BTreeSet::new();
    let mut from = position.resume_from();
    let mut pages = 0;
    while from.is_none_or(|f| f < up_to) {
        if pages == READ_PAGES_PER_UPDATE {
            let reached = from.unwrap_or(up_to);
            tell_senders(ports, update, &senders, reached).await?;
            store.save_read_progress(reader, conversation, reached).await?;
            ports.publisher.publish_event(ports.topics, update).await?;
            info!(%reader, %conversation, %reached, "long READ backlog: carried on in another invocation");
            change.told = senders.into_iter().collect();
            change.continued = true;
            return Ok(change);
        }
        let page = store.messages_between(conversation, from, up_to, READ_PAGE).await?;
        let Some((last, _)) = page.last() else { break };
        let last = *last;
        let theirs: Vec<MessageId> = page
            .iter()
            .filter(|(_, sender)| sender != reader)
            .map(|(id, sender)| {
                senders.insert(sender.clone());
                *id
            })
            .collect();
        store.mark_read(conversation, reader, &theirs, update.at).await?;
        change.advanced.extend(theirs);
        pages += 1;
        if page.len() < READ_PAGE {
            break;
        }
        from = Some(last);
    }
    tell_senders(ports, update, &senders, up_to).await?;
    store.advance_read_cursor(reader, conversation, up_to).await?;
    change.told = senders.into_iter().collect();
    Ok(change)
}

/// One "read up to" frame to each sender.
async fn tell_senders<S, D, F, P>(
    ports: &StatusPorts<'_, S, D, F, P>,
    update: &MessageStatusUpdate,
    senders: &BTreeSet<UserId>,
    up_to: MessageId,
) -> Result<(), Error>
where
    D: ConnectionDirectory,
    F: FramePoster,
{
    let frame = ServerFrame::Status {
        message_id: up_to,
        conversation_id: &update.conversation_id,
        user_id: &update.user_id,
        status: DeliveryStatus::Read,
        at: update.at,
        up_to: true,
    }
    .to_bytes();
    for sender in senders {
        post_to_user(ports.directory, ports.poster, sender, &frame).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Memory, sample_message, status_update};
    use crate::persist::persist_message;

    fn ports(mem: &Memory) -> StatusPorts<'_, Memory, Memory, Memory, Memory> {
        StatusPorts {
            store: mem,
            directory: mem,
            poster: mem,
            publisher: mem,
            topics: TOPICS.get_or_init(Topics::default),
            read_by: READ_BY.get_or_init(ReadByFrames::default),
        }
    }

    static TOPICS: std::sync::OnceLock<Topics> = std::sync::OnceLock::new();
    static READ_BY: std::sync::OnceLock<ReadByFrames> = std::sync::OnceLock::new();

    async fn apply(mem: &Memory, update: &MessageStatusUpdate) -> StatusChange {
        apply_status_update(&ports(mem), update).await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_groups_reads_are_counted_and_the_sender_hears_a_count_now_and_then() {
        use crate::ports::ConversationStore;
        // GIVEN alice online and her message in a large group of 103
        let mem = Memory::default();
        mem.connect("alice", "conn-alice");
        let c = crate::ports::Conversation {
            id: relaychat_schema::ConversationId::parse("big").unwrap(),
            title: None,
            members: vec![
                crate::memory::user("alice"),
                crate::memory::user("bob"),
                crate::memory::user("carol"),
            ],
            created_by: crate::memory::user("alice"),
            created_at: chrono::Utc::now(),
            large: None,
        };
        mem.create_conversation(&c, None).await.unwrap();
        let others: Vec<UserId> = (0..100).map(|i| crate::memory::user(&format!("m{i:03}"))).collect();
        mem.add_to_large(&c, &others).await.unwrap().unwrap();
        let mut m = sample_message("big", "alice", &[]);
        m.large_group = true;
        persist_message(&mem, &m).await.unwrap();
        let read = |who: &str| {
            let mut u = status_update(&m, who, DeliveryStatus::Read);
            u.large_group = true;
            u
        };
        let ports = ports(&mem);
        // WHEN bob reads, carol reads at once, then m001 two seconds later
        let bob = apply_status_update(&ports, &read("bob")).await.unwrap();
        let carol = apply_status_update(&ports, &read("carol")).await.unwrap();
        tokio::time::advance(READ_BY_EVERY).await;
        apply_status_update(&ports, &read("m001")).await.unwrap();
        // THEN no receipt was kept per reader, and alice heard two counts, not three frames
        assert_eq!((bob.advanced, carol.told.len()), (vec![m.message_id], 0));
        let frames = mem.frames_to("conn-alice");
        let counts: Vec<u64> = frames.iter().map(|f| f["readBy"].as_u64().unwrap()).collect();
        assert_eq!(counts, vec![1, 3]);
        assert_eq!(frames[0]["type"], "readBy");
        assert!(mem.published("message-status-events").is_empty());
    }

    #[tokio::test]
    async fn receipts_only_move_forward_and_the_sender_hears_each_move_once() {
        // GIVEN alice online, and her message to bob stored
        let mem = Memory::default();
        mem.connect("alice", "conn-alice");
        let m = sample_message("c1", "alice", &["bob"]);
        persist_message(&mem, &m).await.unwrap();
        // WHEN bob reads it, then a late DELIVERED arrives, then the READ is replayed
        let read = status_update(&m, "bob", DeliveryStatus::Read);
        let delivered = status_update(&m, "bob", DeliveryStatus::Delivered);
        assert_eq!(apply(&mem, &read).await.advanced, vec![m.message_id]);
        assert!(apply(&mem, &delivered).await.advanced.is_empty());
        assert!(apply(&mem, &read).await.advanced.is_empty());
        // THEN the receipt is READ, alice got exactly one status frame, and bob has nothing unread
        assert_eq!(mem.receipt(m.message_id, "bob"), Some(DeliveryStatus::Read));
        let frames = mem.frames_to("conn-alice");
        assert_eq!(frames.len(), 1);
        assert_eq!(
            (
                frames[0]["type"].as_str(),
                frames[0]["status"].as_str(),
                frames[0]["upTo"].as_bool()
            ),
            (Some("status"), Some("READ"), Some(true))
        );
        assert_eq!(mem.unread("bob", "c1"), 0);
    }

    #[tokio::test]
    async fn read_covers_everything_up_to_the_message_but_not_the_readers_own() {
        let mem = Memory::default();
        let m1 = sample_message("c1", "alice", &["bob"]);
        let own = sample_message("c1", "bob", &["alice"]);
        let m2 = sample_message("c1", "alice", &["bob"]);
        let m3 = sample_message("c1", "alice", &["bob"]);
        for m in [&m1, &own, &m2, &m3] {
            persist_message(&mem, m).await.unwrap();
        }
        assert_eq!(mem.unread("bob", "c1"), 3);
        let change = apply(&mem, &status_update(&m2, "bob", DeliveryStatus::Read)).await;
        assert_eq!(change.advanced, vec![m1.message_id, m2.message_id]);
        assert_eq!(mem.receipt(own.message_id, "bob"), None);
        assert_eq!(mem.receipt(m3.message_id, "bob"), None);
        assert_eq!(mem.unread("bob", "c1"), 1, "m3 is still unread");
    }

    #[tokio::test]
    async fn delivered_without_a_sender_is_a_permanent_error() {
        let mem = Memory::default();
        let m = sample_message("c1", "alice", &["bob"]);
        let mut update = status_update(&m, "bob", DeliveryStatus::Delivered);
        update.sender_id = None;
        let err = apply_status_update(&ports(&mem), &update).await.unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("senderId"), "{err}");
    }

    #[tokio::test]
    async fn a_status_frame_lost_to_a_failed_post_is_sent_on_the_retry() {
        // GIVEN alice online and her message to bob; the first push to alice fails
        let mem = Memory::default();
        mem.connect("alice", "conn-alice");
        let m = sample_message("c1", "alice", &["bob"]);
        persist_message(&mem, &m).await.unwrap();
        for status in [DeliveryStatus::Delivered, DeliveryStatus::Read] {
            let update = status_update(&m, "bob", status);
            mem.fail_frame_posts(1);
            // WHEN the update fails after its receipt was written, and is retried
            assert!(
                apply_status_update(&ports(&mem), &update)
                    .await
                    .unwrap_err()
                    .is_retryable()
            );
            apply(&mem, &update).await;
        }
        // THEN alice heard both: DELIVERED, then READ
        let frames = mem.frames_to("conn-alice");
        let statuses: Vec<_> = frames
            .iter()
            .map(|f| f["status"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(statuses, vec!["DELIVERED", "READ"]);
    }

    #[tokio::test]
    async fn a_long_backlog_is_read_in_bounded_pieces_with_one_frame_per_sender() {
        // GIVEN a backlog from alice and carol longer than one invocation works through
        let mem = Memory::default();
        mem.connect("alice", "conn-alice");
        mem.connect("carol", "conn-carol");
        let backlog = READ_PAGE * READ_PAGES_PER_UPDATE + 10;
        let mut last = None;
        for i in 0..backlog {
            let from = if i % 2 == 0 { "alice" } else { "carol" };
            let m = sample_message("c1", from, &["alice", "bob", "carol"]);
            persist_message(&mem, &m).await.unwrap();
            last = Some(m);
        }
        let last = last.unwrap();
        assert_eq!(mem.unread("bob", "c1"), backlog as i64);
        // WHEN bob reads it all
        let read = status_update(&last, "bob", DeliveryStatus::Read);
        let first = apply(&mem, &read).await;
        // THEN the first invocation stopped after its pages and handed the rest on
        assert!(first.continued);
        assert_eq!(first.advanced.len(), READ_PAGE * READ_PAGES_PER_UPDATE);
        let requeued = mem.published("message-status-events");
        assert_eq!(requeued.len(), 1);
        assert_eq!(requeued[0].0, "bob");
        // AND the continuation finishes: every message READ, nothing unread
        let second = apply(&mem, &read).await;
        assert!(!second.continued);
        assert_eq!(second.advanced.len(), 10);
        assert_eq!(mem.unread("bob", "c1"), 0);
        assert_eq!(mem.receipt(last.message_id, "bob"), Some(DeliveryStatus::Read));
        // AND each sender got one frame per invocation, not one per message
        assert_eq!(mem.frames_to("conn-alice").len(), 2);
        assert_eq!(mem.frames_to("conn-carol").len(), 2);
        assert_eq!(mem.frames_to("conn-alice")[1]["messageId"], last.message_id.to_string());
        // AND a replay does nothing at all
        assert_eq!(apply(&mem, &read).await, StatusChange::default());
    }

    #[tokio::test]
    async fn a_message_stored_after_the_cursor_passed_it_is_read_not_unread() {
        // Both orders of arrival: stored then read, and read then stored.
        for stored_first in [true, false] {
            let mem = Memory::default();
            let early = sample_message("c1", "alice", &["bob"]);
            let late = sample_message("c1", "alice", &["bob"]);
            let read = status_update(&late, "bob", DeliveryStatus::Read);
            if stored_first {
                persist_message(&mem, &early).await.unwrap();
                persist_message(&mem, &late).await.unwrap();
                apply(&mem, &read).await;
            } else {
                persist_message(&mem, &late).await.unwrap();
                apply(&mem, &read).await;
                // `early` was minted first but reaches storage after bob read past it
                persist_message(&mem, &early).await.unwrap();
            }
            assert_eq!(mem.unread("bob", "c1"), 0, "stored first: {stored_first}");
            assert_eq!(mem.receipt(early.message_id, "bob"), Some(DeliveryStatus::Read));
            assert_eq!(mem.receipt(late.message_id, "bob"), Some(DeliveryStatus::Read));
        }
    }
}
