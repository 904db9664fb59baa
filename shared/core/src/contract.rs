//! The ports' contract: what every implementation of the storage ports must do, written once and
//! run against both the in-memory fakes (core's unit tests) and the DynamoDB adapter on DynamoDB
//! Local (the adapters' tests), so a fake that drifts from DynamoDB fails a test.
//!
//! `port_contract_tests!(store_expression)` expands to one test per rule; each test builds its own
//! store from the expression and observes it only through the ports.

use chrono::{Duration, Utc};
use relaychat_schema::{
    Change, ChatMessage, ClientMessageId, ConnectionId, ConversationId, DeliveryStatus, DisplayName, MessageChange,
    MessageContent, MessageId, Title, UserId,
};

use relaychat_schema::protocol::ConversationSummary;

use crate::limits::{Budget, Limited};
use crate::memory::{sample_change as change, sample_message};
use crate::ports::{
    AnalyticsStore, Announced, ChangeOutcome, ConnectionDirectory, ConnectionRegistry, Conversation, ConversationStore,
    Counted, CounterKey, Identity, Inserted, MemberPages, MessageStore, PresenceStore, ReadState, Receipts, SendClaim,
};
use relaychat_schema::protocol::PresenceStatus;

/// Everything the contract exercises.
pub trait Store:
    MessageStore
    + MemberPages
    + ReadState
    + ConversationStore
    + ConnectionRegistry
    + ConnectionDirectory
    + AnalyticsStore
    + PresenceStore
    + Receipts
{
}

impl<S> Store for S where
    S: MessageStore
        + MemberPages
        + ReadState
        + ConversationStore
        + ConnectionRegistry
        + ConnectionDirectory
        + AnalyticsStore
        + PresenceStore
        + Receipts
{
}

fn user(name: &str) -> UserId {
    UserId::parse(name).expect("a test user id")
}

/// A fresh conversation id (a ULID, as the server mints them).
fn new_conversation_id() -> ConversationId {
    ConversationId::parse(MessageId::new().to_string()).expect("a ULID is a conversation id")
}

fn conversation(members: &[&str]) -> Conversation {
    Conversation {
        id: new_conversation_id(),
        title: None,
        members: members.iter().map(|m| user(m)).collect(),
        created_by: user(members[0]),
        created_at: Utc::now(),
        large: None,
    }
}

fn message(c: &Conversation, sender: &str) -> ChatMessage {
    let names: Vec<&str> = c.members.iter().map(UserId::as_str).collect();
    sample_message(c.id.as_str(), sender, &names)
}

async fn summary(store: &impl Store, who: &str, c: &Conversation) -> Option<ConversationSummary> {
    let all = store.conversations_of(&user(who)).await.expect("conversations_of");
    all.into_iter().find(|s| s.conversation_id == c.id)
}

async fn unread(store: &impl Store, who: &str, c: &Conversation) -> i64 {
    summary(store, who, c)
        .await
        .map(|s| s.unread)
        .expect("a member's summary")
}

/// A large group's member reads up to `to`: where that put their counted read, if it moved.
async fn read_up_to(store: &impl Store, who: &str, c: &Conversation, to: MessageId) -> Option<crate::ports::ReadPlace> {
    store
        .advance_read_position(&user(who), &c.id, to)
        .await
        .expect("advance_read_position")
}

async fn stored(store: &impl Store, m: &ChatMessage) -> Inserted {
    store.insert_message(m).await.expect("insert_message")
}

pub async fn a_conversation_is_listed_for_its_members_only(store: &impl Store) {
    let c = conversation(&["alice", "bob"]);
    let created = store.create_conversation(&c, None).await.expect("create");
    assert_eq!((&created.id, &created.members), (&c.id, &c.members));
    let read = store.conversation(&c.id).await.expect("conversation").expect("stored");
    assert_eq!(read.members, c.members);
    for member in ["alice", "bob"] {
        let s = summary(store, member, &c).await.expect("listed for a member");
        assert_eq!((s.unread, s.member_count, s.last_message), (0, 2, None), "{member}");
    }
    assert!(summary(store, "mallory", &c).await.is_none());
    assert!(
        store
            .conversation(&new_conversation_id())
            .await
            .expect("lookup")
            .is_none()
    );
}

pub async fn a_retried_create_returns_the_first_conversation(store: &impl Store) {
    let key = ClientMessageId::parse("create-1").expect("a request key");
    let first = conversation(&["carol", "dave"]);
    let mut retry = conversation(&["carol", "dave"]);
    retry.created_by = first.created_by.clone();
    assert_eq!(
        store.create_conversation(&first, Some(&key)).await.expect("create").id,
        first.id
    );
    assert_eq!(
        store.create_conversation(&retry, Some(&key)).await.expect("retry").id,
        first.id
    );
    assert!(
        summary(store, "dave", &retry).await.is_none(),
        "the retry created nothing"
    );
}

pub async fn a_pair_has_one_direct_conversation(store: &impl Store) {
    let now = Utc::now();
    let conversation = |id: &str, by: &str, members: &[&str]| Conversation {
        id: ConversationId::parse(id).expect("id"),
        title: None,
        members: members.iter().map(|m| user(m)).collect(),
        created_by: user(by),
        created_at: now,
        large: None,
    };
    let first = store
        .create_conversation(&conversation("direct-1", "judy", &["judy", "kim"]), None)
        .await
        .expect("create");
    assert_eq!(first.id.as_str(), "direct-1");
    let again = store
        .create_conversation(&conversation("direct-2", "kim", &["kim", "judy"]), None)
        .await
        .expect("create");
    assert_eq!(again.id.as_str(), "direct-1", "the pair's conversation, whoever asks");
    assert!(
        store
            .conversation(&ConversationId::parse("direct-2").expect("id"))
            .await
            .expect("read")
            .is_none()
    );
    let group = store
        .create_conversation(&conversation("group-1", "judy", &["judy", "kim", "lee"]), None)
        .await
        .expect("create");
    assert_eq!(
        group.id.as_str(),
        "group-1",
        "a group of the pair and another is a conversation of its own"
    );
    let kims: Vec<String> = store
        .conversations_of(&user("kim"))
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.conversation_id.to_string())
        .collect();
    assert_eq!(kims.len(), 2, "{kims:?}");
}

pub async fn members_change_only_from_what_was_read_and_titles_change(store: &impl Store) {
    let group = Conversation {
        id: ConversationId::parse("group-m").expect("id"),
        title: None,
        members: vec![user("mia"), user("noah"), user("olga")],
        created_by: user("mia"),
        created_at: Utc::now(),
        large: None,
    };
    store.create_conversation(&group, None).await.expect("create");
    let grown = [user("mia"), user("noah"), user("olga"), user("pia")];
    let changed = store.set_members(&group, &grown).await.expect("set").expect("changed");
    assert_eq!(changed.members, grown);
    assert_eq!(
        store
            .conversation(&group.id)
            .await
            .expect("read")
            .expect("there")
            .members,
        grown
    );
    let listed = |u: &'static str| async move {
        store
            .conversations_of(&user(u))
            .await
            .expect("list")
            .iter()
            .any(|c| c.conversation_id.as_str() == "group-m")
    };
    assert!(listed("pia").await, "a new member has a membership");
    // From a stale read: nothing changes.
    let stale = store.set_members(&group, &[user("mia")]).await.expect("set");
    assert!(stale.is_none(), "the members moved on since that read");
    let shrunk = [user("mia"), user("olga"), user("pia")];
    store
        .set_members(&changed, &shrunk)
        .await
        .expect("set")
        .expect("changed");
    assert!(!listed("noah").await, "a removed member has none");
    let title = Title::parse("Renamed").expect("title");
    let renamed = store
        .set_title(&group.id, Some(&title))
        .await
        .expect("rename")
        .expect("there");
    assert_eq!((renamed.title, renamed.members), (Some(title), shrunk.to_vec()));
    let cleared = store.set_title(&group.id, None).await.expect("rename").expect("there");
    assert_eq!(cleared.title, None);
    let nowhere = ConversationId::parse("no-such").expect("id");
    assert!(store.set_title(&nowhere, None).await.expect("rename").is_none());
}

pub async fn a_message_has_the_status_every_recipient_reached(store: &impl Store) {
    let m = sample_message("c-receipts", "alice", &["alice", "bob", "carol"]);
    store.insert_message(&m).await.expect("insert");
    let (bob, carol) = (user("bob"), user("carol"));
    let status = || async {
        store
            .receipt_statuses(&[m.message_id], &[bob.clone(), carol.clone()])
            .await
    };
    assert_eq!(status().await.expect("statuses")[&m.message_id], DeliveryStatus::Sent);
    for who in [&bob, &carol] {
        store
            .advance_receipt(
                m.message_id,
                &m.conversation_id,
                who,
                DeliveryStatus::Delivered,
                Utc::now(),
            )
            .await
            .expect("receipt");
    }
    assert_eq!(
        status().await.expect("statuses")[&m.message_id],
        DeliveryStatus::Delivered
    );
    store
        .mark_read(&m.conversation_id, &bob, &[m.message_id], Utc::now())
        .await
        .expect("read");
    assert_eq!(
        status().await.expect("statuses")[&m.message_id],
        DeliveryStatus::Delivered,
        "READ only once every recipient read it"
    );
    store
        .mark_read(&m.conversation_id, &carol, &[m.message_id], Utc::now())
        .await
        .expect("read");
    assert_eq!(status().await.expect("statuses")[&m.message_id], DeliveryStatus::Read);
}

pub async fn an_idempotency_key_is_claimed_once_per_sender(store: &impl Store) {
    let claim = SendClaim {
        sender: user("quinn"),
        key: ClientMessageId::parse("k-1").expect("key"),
        conversation_id: ConversationId::parse("c-claims").expect("id"),
        content: "hello".into(),
        message_id: MessageId::new(),
        sent_at: Utc::now(),
    };
    assert_eq!(store.claim_send(&claim).await.expect("claim"), None, "the first claim");
    let retry = SendClaim {
        message_id: MessageId::new(),
        ..claim.clone()
    };
    let earlier = store.claim_send(&retry).await.expect("claim").expect("claimed before");
    assert_eq!(earlier.message_id, claim.message_id);
    assert_eq!(
        (earlier.conversation_id, earlier.content),
        (claim.conversation_id.clone(), claim.content.clone())
    );
    assert_eq!(earlier.sent_at.timestamp_millis(), claim.sent_at.timestamp_millis());
    let someone_else = SendClaim {
        sender: user("rita"),
        ..retry
    };
    assert_eq!(
        store.claim_send(&someone_else).await.expect("claim"),
        None,
        "keys are per sender"
    );
}

pub async fn a_message_is_stored_once_and_unread_once_per_recipient(store: &impl Store) {
    let c = conversation(&["alice", "bob", "carol"]);
    store.create_conversation(&c, None).await.expect("create");
    let m = message(&c, "alice");
    assert_eq!(
        stored(store, &m).await,
        Inserted::Stored {
            already_read_by: vec![]
        }
    );
    assert_eq!(stored(store, &m).await, Inserted::Repeat);
    store.set_last_message(&m).await.expect("set_last_message");
    assert_eq!(
        (
            unread(store, "alice", &c).await,
            unread(store, "bob", &c).await,
            unread(store, "carol", &c).await
        ),
        (0, 1, 1)
    );
    let (page, _) = store.history(&c.id, None, 10).await.expect("history");
    assert_eq!(
        page.iter().map(|v| v.message_id).collect::<Vec<_>>(),
        vec![m.message_id]
    );
    let last = summary(store, "bob", &c).await.and_then(|s| s.last_message);
    assert_eq!(last.map(|v| v.message_id), Some(m.message_id));
}

pub async fn the_last_message_never_moves_back(store: &impl Store) {
    let c = conversation(&["alice", "bob"]);
    store.create_conversation(&c, None).await.expect("create");
    let (older, newer) = (message(&c, "alice"), message(&c, "bob"));
    for m in [&newer, &older] {
        stored(store, m).await;
        store.set_last_message(m).await.expect("set_last_message");
    }
    let last = summary(store, "alice", &c).await.and_then(|s| s.last_message);
    assert_eq!(last.map(|v| v.message_id), Some(newer.message_id));
}

pub async fn storing_a_message_makes_it_the_last_unless_a_later_one_is(store: &impl Store) {
    let c = conversation(&["alice", "bob"]);
    store.create_conversation(&c, None).await.expect("create");
    let (older, newer) = (message(&c, "alice"), message(&c, "bob"));
    stored(store, &older).await;
    let last = |s: Option<ConversationSummary>| s.and_then(|s| s.last_message).map(|v| v.message_id);
    assert_eq!(last(summary(store, "bob", &c).await), Some(older.message_id));
    stored(store, &newer).await;
    assert_eq!(last(summary(store, "bob", &c).await), Some(newer.message_id));
    // Stored late (minted first): stored, counted, but not the last message.
    let late = message(&c, "alice");
    let latest = message(&c, "bob");
    stored(store, &latest).await;
    assert_eq!(
        stored(store, &late).await,
        Inserted::Stored {
            already_read_by: vec![]
        }
    );
    assert_eq!(last(summary(store, "alice", &c).await), Some(latest.message_id));
    assert_eq!(unread(store, "bob", &c).await, 2, "older and late, both from alice");
}

fn edited(text: &str) -> Change {
    Change::Edited {
        content: MessageContent::parse(text).expect("test content"),
    }
}

pub async fn the_latest_edit_stands_until_the_deletion_in_history_and_the_last_message(store: &impl Store) {
    let c = conversation(&["alice", "bob"]);
    store.create_conversation(&c, None).await.expect("create");
    let (first, last) = (message(&c, "alice"), message(&c, "alice"));
    stored(store, &first).await;
    stored(store, &last).await;
    let apply = |ch: MessageChange| async move { store.apply_change(&ch).await.expect("apply_change") };
    let conversation_id = &c.id;
    let view = |m: &ChatMessage| {
        let id = m.message_id;
        async move {
            store
                .message(conversation_id, id)
                .await
                .expect("message")
                .expect("stored")
        }
    };
    // Edits: the later one stands, whichever arrives first; a replay is applied again.
    assert_eq!(apply(change(&last, edited("second"), 2)).await, ChangeOutcome::Applied);
    assert_eq!(
        apply(change(&last, edited("first"), 1)).await,
        ChangeOutcome::Superseded
    );
    assert_eq!(apply(change(&last, edited("second"), 2)).await, ChangeOutcome::Applied);
    let v = view(&last).await;
    let millis = |t: Option<chrono::DateTime<Utc>>| t.map(|t| t.timestamp_millis());
    assert_eq!(
        (v.content.as_str(), millis(v.edited_at)),
        ("second", millis(Some(last.sent_at + Duration::seconds(2))))
    );
    let preview = summary(store, "bob", &c)
        .await
        .and_then(|s| s.last_message)
        .expect("a last message");
    assert_eq!((preview.content.as_str(), preview.edited_at), ("second", v.edited_at));
    // An edit of a message that is not the last leaves the last one alone.
    assert_eq!(
        apply(change(&first, edited("earlier"), 1)).await,
        ChangeOutcome::Applied
    );
    assert_eq!(view(&first).await.content, "earlier");
    let preview = summary(store, "bob", &c)
        .await
        .and_then(|s| s.last_message)
        .expect("a last message");
    assert_eq!(
        (preview.message_id, preview.content.as_str()),
        (last.message_id, "second")
    );
    // A deletion: the text goes, in history and the last message; later edits change nothing.
    assert_eq!(apply(change(&last, Change::Deleted, 3)).await, ChangeOutcome::Applied);
    assert_eq!(
        apply(change(&last, edited("after"), 4)).await,
        ChangeOutcome::Superseded
    );
    assert_eq!(
        apply(change(&last, Change::Deleted, 5)).await,
        ChangeOutcome::Superseded
    );
    let (history, _) = store.history(&c.id, None, 10).await.expect("history");
    let tombstone = &history[0];
    assert_eq!(
        (
            tombstone.message_id,
            tombstone.content.as_str(),
            millis(tombstone.deleted_at)
        ),
        (last.message_id, "", millis(Some(last.sent_at + Duration::seconds(3))))
    );
    assert_eq!(history[1].content, "earlier");
    let preview = summary(store, "alice", &c)
        .await
        .and_then(|s| s.last_message)
        .expect("a last message");
    assert_eq!(
        (preview.content.as_str(), preview.deleted_at),
        ("", tombstone.deleted_at)
    );
    // Nothing to change: missing, in any conversation.
    let stranger = message(&c, "alice");
    assert_eq!(
        apply(change(&stranger, Change::Deleted, 1)).await,
        ChangeOutcome::Missing
    );
    assert!(
        store
            .message(&c.id, stranger.message_id)
            .await
            .expect("message")
            .is_none()
    );
}

/// A message to a large group: no recipients listed.
fn large_message(c: &Conversation, sender: &str) -> ChatMessage {
    let mut m = sample_message(c.id.as_str(), sender, &[]);
    m.large_group = true;
    m
}

/// Growing large keeps what the small group's members had unread: it counts on until they read.
pub async fn growing_large_keeps_what_the_members_had_unread(store: &impl Store) {
    use relaychat_schema::events::MAX_SMALL_MEMBERS;
    let c = conversation(&["alice", "bob", "carol"]);
    store.create_conversation(&c, None).await.expect("create");
    let (s1, s2) = (message(&c, "alice"), message(&c, "alice"));
    stored(store, &s1).await;
    stored(store, &s2).await;
    assert_eq!(
        (unread(store, "bob", &c).await, unread(store, "carol", &c).await),
        (2, 2)
    );
    let added: Vec<UserId> = (0..MAX_SMALL_MEMBERS).map(|i| user(&format!("g{i:03}"))).collect();
    let grown = store.add_to_large(&c, &added).await.expect("add").expect("grown");
    assert_eq!(
        (
            unread(store, "alice", &c).await,
            unread(store, "bob", &c).await,
            unread(store, "carol", &c).await,
            unread(store, "g000", &c).await
        ),
        (0, 2, 2, 0),
        "the members of before keep their unread; a new one has nothing from before"
    );
    let l1 = large_message(&grown, "alice");
    stored(store, &l1).await;
    assert_eq!(
        (unread(store, "bob", &c).await, unread(store, "g000", &c).await),
        (3, 1)
    );
    // Reading the latest reads everything before it; reading the last message of before reads
    // what was unread of then.
    read_up_to(store, "bob", &c, l1.message_id).await;
    assert_eq!(unread(store, "bob", &c).await, 0);
    read_up_to(store, "carol", &c, s2.message_id.max(s1.message_id)).await;
    assert_eq!(unread(store, "carol", &c).await, 1, "the message since it grew");
}

pub async fn a_large_group_keeps_memberships_and_counts_unread_and_reads_by_position(store: &impl Store) {
    use relaychat_schema::events::MAX_SMALL_MEMBERS;
    let c = conversation(&["alice", "bob", "carol"]);
    store.create_conversation(&c, None).await.expect("create");
    // Grown past a small group's size: its list becomes memberships only.
    let added: Vec<UserId> = (0..MAX_SMALL_MEMBERS).map(|i| user(&format!("m{i:03}"))).collect();
    let grown = store.add_to_large(&c, &added).await.expect("add").expect("grown");
    assert_eq!((grown.large, grown.members.len()), (Some(102), 0));
    assert_eq!(
        store.conversation(&c.id).await.expect("read").expect("stored").large,
        Some(102)
    );
    assert!(
        store.add_to_large(&c, &[user("late")]).await.expect("add").is_none(),
        "a small group's list read before it grew is stale"
    );
    let grown = store
        .add_to_large(&grown, &[user("bob"), user("dave")])
        .await
        .expect("add")
        .expect("added");
    assert_eq!(grown.large, Some(103), "bob was a member already");
    for (who, member) in [("bob", true), ("dave", true), ("m050", true), ("mallory", false)] {
        assert_eq!(
            store.is_member(&c.id, &user(who)).await.expect("is_member"),
            member,
            "{who}"
        );
    }
    // Members page by page, in id order, each once.
    let first = store.members_page(&c.id, None, 50).await.expect("page");
    let rest = store.members_page(&c.id, first.last(), 100).await.expect("page");
    assert_eq!((first.len(), rest.len()), (50, 53));
    let all: Vec<UserId> = first.iter().chain(&rest).cloned().collect();
    assert!(all.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");
    assert!(all.contains(&user("alice")) && all.contains(&user("dave")));
    // Unread by sequence: each message counts for everyone but its sender, who read up to it.
    let m1 = large_message(&grown, "alice");
    assert!(matches!(stored(store, &m1).await, Inserted::Stored { .. }));
    assert_eq!(stored(store, &m1).await, Inserted::Repeat);
    let m2 = large_message(&grown, "bob");
    stored(store, &m2).await;
    assert_eq!(
        (
            unread(store, "alice", &c).await,
            unread(store, "bob", &c).await,
            unread(store, "dave", &c).await
        ),
        (1, 0, 2)
    );
    let listed = summary(store, "m050", &c).await.expect("listed for a member");
    assert_eq!((listed.member_count, listed.members.len(), listed.unread), (103, 0, 2));
    assert_eq!(listed.last_message.map(|v| v.message_id), Some(m2.message_id));
    // Reading moves a position: unread follows, and read-by counts those who read up to a message.
    let id = &c.id;
    assert!(read_up_to(store, "dave", &c, m2.message_id).await.is_some());
    assert!(
        read_up_to(store, "dave", &c, m1.message_id).await.is_none(),
        "never back"
    );
    assert_eq!(unread(store, "dave", &c).await, 0);
    assert!(read_up_to(store, "m001", &c, m1.message_id).await.is_some());
    assert_eq!(unread(store, "m001", &c).await, 1, "m2 is after what m001 read");
    let read_by = |sender: &'static str, m: MessageId| async move {
        store
            .read_by(id, &user(sender), &[m])
            .await
            .expect("read_by")
            .get(&m)
            .copied()
    };
    assert_eq!(read_by("alice", m1.message_id).await, Some(2), "dave and m001");
    assert_eq!(read_by("bob", m2.message_id).await, Some(1), "dave; m001 is before it");
    // Leaving: the membership, the count, and their part in read-by counts go.
    let left = store
        .remove_from_large(&grown, &user("dave"))
        .await
        .expect("remove")
        .expect("removed");
    assert_eq!(left.large, Some(102));
    assert!(!store.is_member(&c.id, &user("dave")).await.expect("is_member"));
    assert!(
        store
            .remove_from_large(&left, &user("dave"))
            .await
            .expect("remove")
            .is_none()
    );
    assert_eq!(read_by("alice", m1.message_id).await, Some(1), "m001");
}

pub async fn history_pages_newest_first_to_the_oldest(store: &impl Store) {
    let c = conversation(&["alice", "bob"]);
    store.create_conversation(&c, None).await.expect("create");
    let mut sent = Vec::new();
    for _ in 0..5 {
        let m = message(&c, "alice");
        stored(store, &m).await;
        sent.push(m.message_id);
    }
    let (mut seen, mut before) = (Vec::new(), None);
    for _ in 0..10 {
        let (page, next) = store.history(&c.id, before, 2).await.expect("history");
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|v| v.message_id));
        match next {
            Some(n) if !page.is_empty() => before = Some(n),
            _ => break,
        }
    }
    sent.reverse();
    assert_eq!(seen, sent, "every message once, newest first");
}

pub async fn the_read_cursor_only_moves_forward_and_recounts_unread(store: &impl Store) {
    let c = conversation(&["alice", "bob"]);
    store.create_conversation(&c, None).await.expect("create");
    let ms: Vec<ChatMessage> = (0..3).map(|_| message(&c, "alice")).collect();
    for m in &ms {
        stored(store, m).await;
    }
    // One of bob's own messages is never unread for him.
    let own = message(&c, "bob");
    stored(store, &own).await;
    let bob = user("bob");
    assert_eq!(unread(store, "bob", &c).await, 3);
    store
        .advance_read_cursor(&bob, &c.id, ms[1].message_id)
        .await
        .expect("advance");
    assert_eq!(unread(store, "bob", &c).await, 1);
    store
        .advance_read_cursor(&bob, &c.id, ms[0].message_id)
        .await
        .expect("advance back");
    let position = store.read_position(&bob, &c.id).await.expect("read_position");
    assert_eq!(position.cursor, Some(ms[1].message_id), "the cursor never moves back");
    assert_eq!(unread(store, "bob", &c).await, 1);
    let between = store
        .messages_between(&c.id, Some(ms[0].message_id), own.message_id, 10)
        .await
        .expect("messages_between");
    let ids: Vec<MessageId> = between.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        vec![ms[1].message_id, ms[2].message_id, own.message_id],
        "oldest first, after excluded"
    );
}

pub async fn a_message_stored_behind_the_cursor_is_read_not_unread(store: &impl Store) {
    let c = conversation(&["alice", "bob"]);
    store.create_conversation(&c, None).await.expect("create");
    // Minted first, stored last (persist lagged, or another instance minted it).
    let late = message(&c, "alice");
    let early = message(&c, "alice");
    stored(store, &early).await;
    store
        .advance_read_cursor(&user("bob"), &c.id, early.message_id)
        .await
        .expect("advance");
    assert_eq!(
        stored(store, &late).await,
        Inserted::Stored {
            already_read_by: vec![user("bob")]
        }
    );
    assert_eq!(unread(store, "bob", &c).await, 0);
}

pub async fn connections_are_found_by_user_until_removed(store: &impl Store) {
    let (one, two) = (
        ConnectionId::parse("Y29ubi0x").expect("id"),
        ConnectionId::parse("Y29ubi0y").expect("id"),
    );
    let identity = Identity {
        user: user("erin"),
        name: DisplayName::parse("Erin").expect("name"),
        expires_at: Some(Utc::now() + Duration::hours(1)),
    };
    for c in [&one, &two] {
        store.register(c, &identity).await.expect("register");
    }
    let found = store.identity_of(&one).await.expect("identity_of").expect("registered");
    assert_eq!((found.user, found.name), (identity.user.clone(), identity.name.clone()));
    let mut of_erin = store.connections_of(&identity.user).await.expect("connections_of");
    of_erin.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(of_erin, vec![one.clone(), two.clone()]);
    store.remove_connection(&one).await.expect("remove_connection");
    store.unregister(&two).await.expect("unregister");
    assert!(
        store
            .connections_of(&identity.user)
            .await
            .expect("connections_of")
            .is_empty()
    );
    assert!(store.identity_of(&two).await.expect("identity_of").is_none());
}

pub async fn a_connection_budget_refuses_within_its_window_only(store: &impl Store) {
    let conn = ConnectionId::parse("YnVkZ2V0").expect("id");
    let identity = Identity {
        user: user("frank"),
        name: DisplayName::parse("Frank").expect("name"),
        expires_at: None,
    };
    store.register(&conn, &identity).await.expect("register");
    let now = Utc::now();
    assert!(
        store
            .allow(Budget::Connection(&conn), Limited::Typing, now)
            .await
            .expect("allow")
    );
    assert!(
        !store
            .allow(Budget::Connection(&conn), Limited::Typing, now)
            .await
            .expect("allow"),
        "one typing per 500 ms"
    );
    let later = now + Duration::milliseconds(600);
    assert!(
        store
            .allow(Budget::Connection(&conn), Limited::Typing, later)
            .await
            .expect("allow")
    );
    let gone = ConnectionId::parse("Z29uZQ==").expect("id");
    assert!(
        !store
            .allow(Budget::Connection(&gone), Limited::Typing, now)
            .await
            .expect("allow"),
        "no budget for an unknown connection"
    );
}

pub async fn a_user_budget_needs_no_connection_and_is_the_users_own(store: &impl Store) {
    let (grace, heidi) = (user("grace"), user("heidi"));
    let now = Utc::now();
    for i in 0..Limited::SendMessage.limit().max {
        assert!(
            store
                .allow(Budget::User(&grace), Limited::SendMessage, now)
                .await
                .expect("allow"),
            "message {i} within the budget"
        );
    }
    assert!(
        !store
            .allow(Budget::User(&grace), Limited::SendMessage, now)
            .await
            .expect("allow"),
        "over the budget"
    );
    assert!(
        store
            .allow(Budget::User(&heidi), Limited::SendMessage, now)
            .await
            .expect("allow"),
        "another user's budget is their own"
    );
    let next_window = now + Duration::milliseconds(Limited::SendMessage.limit().window_ms);
    assert!(
        store
            .allow(Budget::User(&grace), Limited::SendMessage, next_window)
            .await
            .expect("allow")
    );
    assert!(
        store.connections_of(&grace).await.expect("connections_of").is_empty(),
        "a user's budget is not a connection"
    );
}

pub async fn presence_keeps_the_latest_announcement_and_is_no_connection(store: &impl Store) {
    let ivan = user("ivan");
    assert_eq!(store.announced(&ivan).await.expect("announced"), None);
    let t0 = Utc::now();
    let seen = t0 - Duration::seconds(5);
    let offline = Announced {
        status: PresenceStatus::Offline,
        last_seen: Some(seen),
        at: t0,
    };
    store.announce(&ivan, &offline).await.expect("announce");
    let read = store.announced(&ivan).await.expect("announced").expect("stored");
    assert_eq!(read.status, PresenceStatus::Offline);
    assert_eq!(
        read.last_seen.map(|t| t.timestamp_millis()),
        Some(seen.timestamp_millis())
    );
    let stale = Announced {
        status: PresenceStatus::Online,
        last_seen: None,
        at: t0 - Duration::seconds(1),
    };
    store.announce(&ivan, &stale).await.expect("announce");
    assert_eq!(
        store.announced(&ivan).await.expect("announced").map(|a| a.status),
        Some(PresenceStatus::Offline),
        "an older announcement does not overwrite a later one"
    );
    let online = Announced {
        status: PresenceStatus::Online,
        last_seen: Some(seen),
        at: t0 + Duration::seconds(1),
    };
    store.announce(&ivan, &online).await.expect("announce");
    assert_eq!(
        store.announced(&ivan).await.expect("announced").map(|a| a.status),
        Some(PresenceStatus::Online)
    );
    assert!(
        store.connections_of(&ivan).await.expect("connections_of").is_empty(),
        "a presence record is not a connection"
    );
}

pub async fn each_record_is_counted_once(store: &impl Store) {
    let counted = |id: &str| Counted {
        id: id.to_owned(),
        keys: vec![CounterKey {
            counter: "user#alice#2026-01-02".into(),
            field: "messagesSent".into(),
        }],
    };
    assert_eq!(
        store
            .count_once(&[counted("message#1"), counted("message#2")])
            .await
            .expect("count"),
        2
    );
    assert_eq!(
        store
            .count_once(&[counted("message#2"), counted("message#3")])
            .await
            .expect("count"),
        1
    );
    assert_eq!(store.count_once(&[counted("message#3")]).await.expect("count"), 0);
}

pub async fn counters_are_read_back_by_row(store: &impl Store) {
    let counted = |id: &str, row: &str, field: &str| Counted {
        id: id.to_owned(),
        keys: vec![CounterKey {
            counter: row.to_owned(),
            field: field.to_owned(),
        }],
    };
    store
        .count_once(&[
            counted("message#r1", "conv#c9#2026-11-25", "messages"),
            counted("message#r2", "conv#c9#2026-11-25", "messages"),
            counted("event#r3", "conv#c9#2026-11-25", "messageRead"),
            counted("message#r4", "conv#c9#2026-11-26", "messages"),
        ])
        .await
        .expect("count");
    let rows = ["conv#c9#2026-11-25", "conv#c9#2026-11-26", "conv#c9#2026-11-27"].map(String::from);
    let read = store.counters(&rows).await.expect("counters");
    assert_eq!(read["conv#c9#2026-11-25"]["messages"], 2);
    assert_eq!(read["conv#c9#2026-11-25"]["messageRead"], 1);
    assert_eq!(read["conv#c9#2026-11-26"]["messages"], 1);
    assert!(
        !read.contains_key("conv#c9#2026-11-27"),
        "a day never counted is absent"
    );
}

/// One `#[tokio::test]` per rule of the contract, each on a fresh store from `$store`.
#[macro_export]
macro_rules! port_contract_tests {
    ($store:expr) => {
        $crate::port_contract_tests!(@each $store;
            a_conversation_is_listed_for_its_members_only,
            a_retried_create_returns_the_first_conversation,
            a_pair_has_one_direct_conversation,
            a_message_has_the_status_every_recipient_reached,
            an_idempotency_key_is_claimed_once_per_sender,
            members_change_only_from_what_was_read_and_titles_change,
            a_message_is_stored_once_and_unread_once_per_recipient,
            the_last_message_never_moves_back,
            storing_a_message_makes_it_the_last_unless_a_later_one_is,
            history_pages_newest_first_to_the_oldest,
            a_large_group_keeps_memberships_and_counts_unread_and_reads_by_position,
            growing_large_keeps_what_the_members_had_unread,
            the_latest_edit_stands_until_the_deletion_in_history_and_the_last_message,
            the_read_cursor_only_moves_forward_and_recounts_unread,
            a_message_stored_behind_the_cursor_is_read_not_unread,
            connections_are_found_by_user_until_removed,
            a_connection_budget_refuses_within_its_window_only,
            a_user_budget_needs_no_connection_and_is_the_users_own,
            presence_keeps_the_latest_announcement_and_is_no_connection,
            each_record_is_counted_once,
            counters_are_read_back_by_row,
        );
    };
    (@each $store:expr; $($rule:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $rule() {
                let store = $store;
                $crate::contract::$rule(&store).await;
            }
        )+
    };
}
