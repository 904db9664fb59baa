//! A new conversation, and every change to one, appears at once on every member's screens: a
//! `conversation` frame to each member's live connections (and a removed member's), the actor's
//! other devices included (not the connection that asked: its reply says the same). Best effort:
//! the change is stored already, and a member who misses the frame finds it in
//! `listConversations`.

use relaychat_schema::frames::{ConversationChange, ServerFrame};
use relaychat_schema::protocol::{Command, Reply};
use relaychat_schema::{ConnectionId, ConversationId, Title, UserId};
use tracing::warn;

use crate::ports::{ConnectionDirectory, FramePoster, PostOutcome};

/// How many members are posted to at once (the creator's reply waits for the announcement).
const CONCURRENCY: usize = 16;

/// A conversation as its members are told of it: as it is now, and what happened.
pub struct Announcement<'a> {
    pub id: &'a ConversationId,
    pub members: &'a [UserId],
    pub title: Option<&'a Title>,
    pub member_count: usize,
    pub change: ConversationChange,
    pub by: &'a UserId,
    /// Told too: a member no longer (removed, or left), or those just added (a large group
    /// lists no members: there they, the actor and those taken out are the ones told).
    pub also: &'a [UserId],
}

/// What an action does to a conversation, if anything: the change, and whom it names (those it
/// adds or takes out, the actor too).
pub fn change_of(command: &Command, sender: &UserId) -> Option<(ConversationChange, Vec<UserId>)> {
    match command {
        Command::CreateConversation { .. } => Some((ConversationChange::Created, vec![])),
        Command::RenameConversation { .. } => Some((ConversationChange::Renamed, vec![sender.clone()])),
        Command::AddMembers { members, .. } => {
            let mut named = members.clone();
            named.push(sender.clone());
            Some((ConversationChange::MembersAdded, named))
        }
        Command::RemoveMember { user_id, .. } => {
            Some((ConversationChange::MemberRemoved, vec![user_id.clone(), sender.clone()]))
        }
        Command::LeaveConversation { .. } => Some((ConversationChange::Left, vec![sender.clone()])),
        _ => None,
    }
}

/// Announces the conversation an action's reply shows, if the action changed one (`change`, from
/// [`change_of`] before it ran); how many connections took it.
pub async fn announce_reply(
    directory: &impl ConnectionDirectory,
    poster: &impl FramePoster,
    change: Option<(ConversationChange, Vec<UserId>)>,
    reply: Option<&Reply>,
    by: &UserId,
    except: Option<&ConnectionId>,
) -> usize {
    let (
        Some((change, named)),
        Some(Reply::Conversation {
            conversation_id,
            members,
            title,
            member_count,
        }),
    ) = (change, reply)
    else {
        return 0;
    };
    let conversation = Announcement {
        id: conversation_id,
        members,
        title: title.as_ref(),
        change,
        by,
        member_count: *member_count,
        also: &named,
    };
    announce_conversation(directory, poster, &conversation, except).await
}

/// Posts the `conversation` frame to every member's (and a former member's) connections but
/// `except`; how many took it.
pub async fn announce_conversation(
    directory: &impl ConnectionDirectory,
    poster: &impl FramePoster,
    conversation: &Announcement<'_>,
    except: Option<&ConnectionId>,
) -> usize {
    let frame = ServerFrame::Conversation {
        conversation_id: conversation.id,
        members: conversation.members,
        title: conversation.title,
        member_count: conversation.member_count,
        change: conversation.change,
        by: conversation.by,
        created_by: (conversation.change == ConversationChange::Created).then_some(conversation.by),
    }
    .to_bytes();
    let mut audience: Vec<UserId> = conversation.members.to_vec();
    for user in conversation.also {
        if !audience.contains(user) {
            audience.push(user.clone());
        }
    }
    let mut reached = 0;
    for members in audience.chunks(CONCURRENCY) {
        let told = members
            .iter()
            .map(|member| tell_member(directory, poster, member, &frame, except));
        reached += futures::future::join_all(told).await.into_iter().sum::<usize>();
    }
    reached
}

/// Posts `frame` to `member`'s connections but `except`; how many took it.
async fn tell_member(
    directory: &impl ConnectionDirectory,
    poster: &impl FramePoster,
    member: &UserId,
    frame: &[u8],
    except: Option<&ConnectionId>,
) -> usize {
    let connections = match directory.connections_of(member).await {
        Ok(c) => c,
        Err(e) => {
            warn!(%member, error = %e.chain(), "new conversation not announced");
            return 0;
        }
    };
    let mut reached = 0;
    for connection in connections.iter().filter(|c| Some(*c) != except) {
        match poster.post(connection, frame).await {
            Ok(PostOutcome::Delivered) => reached += 1,
            Ok(PostOutcome::Gone) => {
                if let Err(e) = directory.remove_connection(connection).await {
                    warn!(%connection, error = %e.chain(), "gone connection not removed");
                }
            }
            Err(e) => warn!(%connection, error = %e.chain(), "new conversation not announced"),
        }
    }
    reached
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Memory, user};

    #[tokio::test]
    async fn every_member_device_hears_of_it_but_the_one_that_asked() {
        let mem = Memory::default();
        mem.connect("alice", "alice-phone");
        mem.connect("alice", "alice-laptop");
        mem.connect("bob", "bob-phone");
        mem.mark_gone("bob-phone");
        mem.connect("bob", "bob-laptop");
        let (id, members, creator) = (
            ConversationId::parse("c1").unwrap(),
            vec![user("alice"), user("bob"), user("carol")],
            user("alice"),
        );
        let asked_from = ConnectionId::parse("alice-phone").unwrap();
        let conversation = Announcement {
            id: &id,
            members: &members,
            title: None,
            member_count: 3,
            change: ConversationChange::Created,
            by: &creator,
            also: &[],
        };
        let reached = announce_conversation(&mem, &mem, &conversation, Some(&asked_from)).await;
        assert_eq!(reached, 2, "alice's laptop and bob's laptop; carol is offline");
        assert!(
            mem.frames_to("alice-phone").is_empty(),
            "the asking connection has the reply"
        );
        let frame = &mem.frames_to("bob-laptop")[0];
        assert_eq!(
            frame,
            &serde_json::json!({"type": "conversation", "conversationId": "c1", "members": ["alice", "bob", "carol"],
                "title": null, "memberCount": 3, "change": "created", "by": "alice", "createdBy": "alice"})
        );
        assert_eq!(mem.frames_to("alice-laptop").len(), 1);
        assert!(
            mem.connections_of(&user("bob")).await.unwrap().len() == 1,
            "the gone connection is forgotten"
        );
    }
}
