//! deliver-message: a chat message to each recipient's live connections; DELIVERED receipts for
//! those reached, push notifications for those who were not.

use chrono::Utc;
use futures::future::try_join_all;
use relaychat_schema::frames::ServerFrame;
use relaychat_schema::{
    ChatEvent, ChatMessage, ConversationId, DeliveryStatus, MessageChange, MessageStatusUpdate, Notification,
    SCHEMA_VERSION, Topics, UserId,
};
use tracing::debug;

use crate::Error;
use crate::fanout::post_to_user;
use crate::ports::{ConnectionDirectory, FramePoster, MemberPages, PublishEvent, Publisher};

/// Members one invocation posts a large group's message to; the rest are carried on by a
/// continuation record, so a record's work is bounded whatever the group's size.
pub const FANOUT_PAGE: usize = 500;
/// Members posted to at once.
const FANOUT_CONCURRENCY: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: Vec<UserId>,
    pub notified: Vec<UserId>,
}

/// Delivers what a `chat-messages` record holds: a message, or a change to one; in a large
/// group, to one page of its members, handing the rest on.
pub async fn deliver_event(
    members: &impl MemberPages,
    directory: &impl ConnectionDirectory,
    poster: &impl FramePoster,
    publisher: &impl Publisher,
    topics: &Topics,
    event: &ChatEvent,
) -> Result<(), Error> {
    match event {
        event if event.large_group() => {
            let (frame, skip) = match event {
                ChatEvent::Message(m) => (ServerFrame::message(m).to_bytes(), Some(&m.sender_id)),
                ChatEvent::Change(c) => (ServerFrame::change(c).to_bytes(), None),
            };
            let page = FanoutPage {
                conversation: event.conversation_id(),
                after: event.fanout_after(),
                skip,
                frame: &frame,
            };
            if let Some(last) = fan_out_page(members, directory, poster, &page).await? {
                publisher.publish_event(topics, &event.handed_on(last)).await?;
            }
            Ok(())
        }
        ChatEvent::Message(m) => deliver_message(directory, poster, publisher, topics, m)
            .await
            .map(|_| ()),
        ChatEvent::Change(c) => deliver_change(directory, poster, c).await.map(|_| ()),
    }
}

/// One page of a large group's fan-out.
pub struct FanoutPage<'a> {
    pub conversation: &'a ConversationId,
    /// Where the previous page stopped.
    pub after: Option<&'a UserId>,
    /// Not posted to (a message's sender).
    pub skip: Option<&'a UserId>,
    pub frame: &'a [u8],
}

/// Posts the frame to the live connections of the next `FANOUT_PAGE` members; the last member of
/// a full page (where the next page starts), or `None` when this was the last. No receipts and no
/// pushes in a large group: receipts there are read-by counts, and a push for every message to
/// thousands of members is what large groups are muted for.
pub async fn fan_out_page(
    members: &impl MemberPages,
    directory: &impl ConnectionDirectory,
    poster: &impl FramePoster,
    page: &FanoutPage<'_>,
) -> Result<Option<UserId>, Error> {
    let listed = members.members_page(page.conversation, page.after, FANOUT_PAGE).await?;
    let audience: Vec<&UserId> = listed.iter().filter(|m| Some(*m) != page.skip).collect();
    for chunk in audience.chunks(FANOUT_CONCURRENCY) {
        try_join_all(
            chunk
                .iter()
                .map(|member| post_to_user(directory, poster, member, page.frame)),
        )
        .await?;
    }
    debug!(members = listed.len(), "large group: one page fanned out");
    Ok((listed.len() == FANOUT_PAGE).then(|| listed.last().cloned()).flatten())
}

/// Tells every member's live connections of an edit or a deletion (the sender's too: their
/// other devices show it). No receipts and no pushes: it is not a new message. Returns the
/// members reached.
pub async fn deliver_change(
    directory: &impl ConnectionDirectory,
    poster: &impl FramePoster,
    change: &MessageChange,
) -> Result<Vec<UserId>, Error> {
    let frame = ServerFrame::change(change).to_bytes();
    let reached = try_join_all(change.recipients.iter().map(|member| {
        let frame = &frame;
        async move { Ok::<_, Error>((member, post_to_user(directory, poster, member, frame).await? > 0)) }
    }))
    .await?;
    Ok(reached
        .into_iter()
        .filter(|(_, reached)| *reached)
        .map(|(member, _)| member.clone())
        .collect())
}

/// Delivers to all recipients concurrently. A replay posts the frame again (clients drop a
/// `messageId` they already have) and republishes events whose consumers are idempotent.
pub async fn deliver_message(
    directory: &impl ConnectionDirectory,
    poster: &impl FramePoster,
    publisher: &impl Publisher,
    topics: &Topics,
    message: &ChatMessage,
) -> Result<Delivery, Error> {
    let frame = ServerFrame::message(message).to_bytes();
    let outcomes = try_join_all(
        message
            .recipients
            .iter()
            .filter(|r| **r != message.sender_id)
            .map(|recipient| {
                let frame = &frame;
                async move {
                    let reached = post_to_user(directory, poster, recipient, frame).await? > 0;
                    if reached {
                        let update = MessageStatusUpdate {
                            schema_version: SCHEMA_VERSION,
                            message_id: message.message_id,
                            conversation_id: message.conversation_id.clone(),
                            user_id: recipient.clone(),
                            sender_id: Some(message.sender_id.clone()),
                            status: DeliveryStatus::Delivered,
                            at: Utc::now(),
                            large_group: false,
                        };
                        publisher.publish_event(topics, &update).await?;
                    } else {
                        let push = Notification::for_message(message, recipient, None);
                        publisher.publish_event(topics, &push).await?;
                    }
                    debug!(%recipient, reached, "recipient handled");
                    Ok::<_, Error>((recipient.clone(), reached))
                }
            }),
    )
    .await?;
    let mut delivery = Delivery::default();
    for (recipient, reached) in outcomes {
        if reached {
            delivery.delivered.push(recipient)
        } else {
            delivery.notified.push(recipient)
        }
    }
    Ok(delivery)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Memory, sample_message, user};
    use relaychat_schema::events::TopicEvent;

    #[tokio::test]
    async fn online_recipients_get_the_frame_and_a_receipt_offline_ones_a_push() {
        // GIVEN bob online on two connections, one of them stale, and carol offline
        let mem = Memory::default();
        mem.connect("bob", "conn-bob-1");
        mem.connect("bob", "conn-bob-gone");
        mem.mark_gone("conn-bob-gone");
        let m = sample_message("c1", "alice", &["bob", "carol"]);
        // WHEN alice's message is delivered
        let d = deliver_message(&mem, &mem, &mem, &Topics::default(), &m).await.unwrap();
        // THEN bob got it and a DELIVERED event went out; the stale connection was removed; carol gets a push
        assert_eq!(d.delivered, vec![user("bob")]);
        assert_eq!(d.notified, vec![user("carol")]);
        let frames = mem.frames_to("conn-bob-1");
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0]["type"], "message");
        assert_eq!(frames[0]["content"], "hello");
        assert!(mem.connections("bob").iter().all(|c| c != "conn-bob-gone"));
        let status = mem.published("message-status-events");
        assert_eq!(status.len(), 1);
        assert_eq!(
            (status[0].0.as_str(), status[0].1["status"].as_str()),
            ("bob", Some("DELIVERED"))
        );
        let pushes = mem.published("notifications");
        assert_eq!(pushes.len(), 1);
        assert_eq!(pushes[0].1["userId"], "carol");
        assert_eq!(pushes[0].1["notificationId"], format!("msg:{}", m.message_id));
    }

    #[tokio::test]
    async fn a_change_reaches_every_member_online_the_sender_too_and_nothing_else() {
        // GIVEN alice on two devices, bob online and carol offline
        let mem = Memory::default();
        mem.connect("alice", "conn-alice-phone");
        mem.connect("alice", "conn-alice-laptop");
        mem.connect("bob", "conn-bob");
        let m = sample_message("c1", "alice", &["alice", "bob", "carol"]);
        let change = MessageChange {
            schema_version: SCHEMA_VERSION,
            message_id: m.message_id,
            conversation_id: m.conversation_id.clone(),
            sender_id: m.sender_id.clone(),
            change: relaychat_schema::Change::Deleted,
            changed_at: Utc::now(),
            recipients: m.recipients.clone(),
            large_group: false,
            fanout_after: None,
        };
        // WHEN alice's deletion is delivered
        let reached = deliver_change(&mem, &mem, &change).await.unwrap();
        // THEN both of alice's devices and bob's got the tombstone frame; no receipts, no pushes
        assert_eq!(reached, vec![user("alice"), user("bob")]);
        for conn in ["conn-alice-phone", "conn-alice-laptop", "conn-bob"] {
            let frames = mem.frames_to(conn);
            assert_eq!(frames.len(), 1, "{conn}");
            assert_eq!(frames[0]["type"], "messageDeleted");
            assert_eq!(frames[0]["messageId"], m.message_id.to_string());
        }
        assert!(mem.published("message-status-events").is_empty());
        assert!(mem.published("notifications").is_empty());
    }

    #[tokio::test]
    async fn a_large_group_is_fanned_out_a_page_at_a_time_each_page_handing_on_the_rest() {
        use crate::ports::ConversationStore;
        // GIVEN a large group of 1,201 with three members online, one in each page
        let mem = Memory::default();
        let c = crate::ports::Conversation {
            id: relaychat_schema::ConversationId::parse("big").unwrap(),
            title: None,
            members: vec![user("alice"), user("bob")],
            created_by: user("alice"),
            created_at: Utc::now(),
            large: None,
        };
        mem.create_conversation(&c, None).await.unwrap();
        let others: Vec<UserId> = (0..1_199).map(|i| user(&format!("u{i:04}"))).collect();
        mem.add_to_large(&c, &others).await.unwrap().unwrap();
        for (who, conn) in [("alice", "conn-a"), ("u0600", "conn-600"), ("u1198", "conn-1198")] {
            mem.connect(who, conn);
        }
        let mut m = sample_message("big", "bob", &[]);
        m.large_group = true;
        // WHEN deliver-message reads the message, then each continuation it publishes
        let topics = Topics::default();
        let mut event = ChatEvent::Message(m.clone());
        let mut invocations = 0;
        loop {
            invocations += 1;
            let before = mem.published("chat-messages").len();
            deliver_event(&mem, &mem, &mem, &mem, &topics, &event).await.unwrap();
            let published = mem.published("chat-messages");
            if published.len() == before {
                break;
            }
            event = ChatEvent::from_json(&serde_json::to_vec(&published[before].1).unwrap()).unwrap();
            let ChatEvent::Message(rest) = &event else {
                panic!("a continuation")
            };
            assert_eq!(rest.message_id, m.message_id);
        }
        // THEN three pages of at most FANOUT_PAGE reached every member online once; no receipts, no pushes
        assert_eq!(invocations, 1_201_usize.div_ceil(FANOUT_PAGE));
        for conn in ["conn-a", "conn-600", "conn-1198"] {
            assert_eq!(mem.frames_to(conn).len(), 1, "{conn}");
        }
        assert!(mem.published("message-status-events").is_empty());
        assert!(mem.published("notifications").is_empty());
    }

    #[tokio::test]
    async fn a_failing_publish_fails_the_record_for_retry() {
        let mem = Memory::default();
        mem.connect("bob", "conn-bob-1");
        mem.fail_publishing();
        let m = sample_message("c1", "alice", &["bob"]);
        let err = deliver_message(&mem, &mem, &mem, &Topics::default(), &m)
            .await
            .unwrap_err();
        assert!(err.is_retryable());
    }
}
