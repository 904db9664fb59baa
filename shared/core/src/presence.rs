//! Presence: a user is online while any of their connections is live (their connections are the
//! truth; an expired one no longer counts). update-presence settles each connect and disconnect:
//! when the user's presence changed, the users who share a conversation with them get a
//! `presence` frame. A disconnect waits out a grace period first, so a reconnect within it (a
//! page reload, a phone switching networks) announces nothing at all.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use relaychat_schema::frames::ServerFrame;
use relaychat_schema::protocol::{PresenceStatus, UserPresence};
use relaychat_schema::{ConnectionChange, PresenceChange, SCHEMA_VERSION, Topics, UserId};
use tracing::warn;

use crate::Error;
use crate::actions::{Origin, Sender};
use crate::fanout::post_to_user;
use crate::ports::{
    Announced, ConnectionDirectory, ConversationStore, FramePoster, PresenceStore, PublishEvent, Publisher,
};

/// How long a disconnect waits for a reconnect before it is announced.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);

/// Most users one change is announced to (a user in many large groups would otherwise make one
/// change cost thousands of posts; beyond this, clients ask with `getPresence`).
pub const MAX_AUDIENCE: usize = 1_000;

/// What settling a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Presence is what was announced already (a repeat, or a reconnect within the grace).
    Unchanged,
    /// Announced to this many live connections.
    Announced(usize),
}

/// The ports presence needs.
pub struct PresencePorts<'a, D, P, C, F> {
    pub directory: &'a D,
    pub presence: &'a P,
    pub conversations: &'a C,
    pub poster: &'a F,
}

/// Works out whether `change` changed the user's presence, and if so tells the users who share a
/// conversation with them, then records it (frames first: a retry after a failed record tells
/// them again rather than never).
pub async fn settle<D, P, C, F>(
    ports: &PresencePorts<'_, D, P, C, F>,
    change: &PresenceChange,
    grace: Duration,
) -> Result<Settled, Error>
where
    D: ConnectionDirectory,
    P: PresenceStore,
    C: ConversationStore,
    F: FramePoster,
{
    if change.change == ConnectionChange::Disconnected {
        let due = change.at + chrono::Duration::from_std(grace).unwrap_or_default();
        if let Ok(wait) = (due - Utc::now()).to_std() {
            tokio::time::sleep(wait.min(grace)).await;
        }
    }
    let user = &change.user_id;
    let online = !ports.directory.connections_of(user).await?.is_empty();
    let status = if online {
        PresenceStatus::Online
    } else {
        PresenceStatus::Offline
    };
    let previous = ports.presence.announced(user).await?;
    if previous.as_ref().map(|p| p.status) == Some(status) {
        return Ok(Settled::Unchanged);
    }
    let last_seen = match status {
        PresenceStatus::Offline => Some(change.at),
        PresenceStatus::Online => previous.as_ref().and_then(|p| p.last_seen),
    };
    // Nobody was told they were online: going offline tells nobody anything new.
    let reached = if previous.is_none() && status == PresenceStatus::Offline {
        0
    } else {
        let frame = ServerFrame::Presence {
            user_id: user,
            status,
            last_seen: last_seen.filter(|_| status == PresenceStatus::Offline),
        }
        .to_bytes();
        let mut reached = 0;
        for member in co_members(ports.conversations, user).await?.iter().take(MAX_AUDIENCE) {
            reached += post_to_user(ports.directory, ports.poster, member, &frame).await?;
        }
        reached
    };
    let announced = Announced {
        status,
        last_seen,
        at: Utc::now(),
    };
    ports.presence.announce(user, &announced).await?;
    Ok(Settled::Announced(reached))
}

/// The users who share a conversation with `user` (not `user`).
pub async fn co_members(conversations: &impl ConversationStore, user: &UserId) -> Result<BTreeSet<UserId>, Error> {
    let mut members = BTreeSet::new();
    for conversation in conversations.conversations_of(user).await? {
        members.extend(conversation.members.into_iter().filter(|m| m != user));
    }
    Ok(members)
}

/// The presence of each of `users` that `asker` may see (themself, and those who share a
/// conversation with them), from their live connections; others are left out.
pub async fn presence_of<S>(store: &S, asker: &UserId, users: &[UserId]) -> Result<Vec<UserPresence>, Error>
where
    S: ConnectionDirectory + PresenceStore + ConversationStore,
{
    let visible = co_members(store, asker).await?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for user in users {
        if !(user == asker || visible.contains(user)) || !seen.insert(user.clone()) {
            continue;
        }
        let online = !store.connections_of(user).await?.is_empty();
        let last_seen = if online {
            None
        } else {
            store.announced(user).await?.and_then(|a| a.last_seen)
        };
        out.push(UserPresence {
            user_id: user.clone(),
            status: if online {
                PresenceStatus::Online
            } else {
                PresenceStatus::Offline
            },
            last_seen,
        });
    }
    Ok(out)
}

/// Queues the news that one of `sender`'s connections came or went (for update-presence), never
/// waiting on the broker: a connect or disconnect must not fail or slow for it. Lost, it costs a
/// late presence frame, never a wrong `getPresence` (which reads the connections).
pub fn connection_changed<P: Publisher>(
    publisher: &P,
    topics: &Topics,
    sender: &Sender,
    change: ConnectionChange,
    at: chrono::DateTime<Utc>,
) {
    let Origin::Socket(connection) = &sender.origin else {
        return;
    };
    let event = PresenceChange {
        schema_version: SCHEMA_VERSION,
        user_id: sender.identity.user.clone(),
        connection_id: connection.clone(),
        change,
        at,
    };
    if let Err(e) = publisher.publish_event_best_effort(topics, &event) {
        warn!(user = %event.user_id, error = %e.chain(), "presence change not queued");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Memory, user};
    use crate::ports::Conversation;
    use relaychat_schema::{ConnectionId, ConversationId};

    fn change(who: &str, connection: &str, change: ConnectionChange) -> PresenceChange {
        PresenceChange {
            schema_version: SCHEMA_VERSION,
            user_id: user(who),
            connection_id: ConnectionId::parse(connection).unwrap(),
            change,
            at: Utc::now(),
        }
    }

    async fn alice_and_bob_share_a_conversation() -> Memory {
        let mem = Memory::default();
        let conversation = Conversation {
            id: ConversationId::parse("c1").unwrap(),
            title: None,
            members: vec![user("alice"), user("bob")],
            created_by: user("alice"),
            created_at: Utc::now(),
            large: None,
        };
        mem.create_conversation(&conversation, None).await.unwrap();
        mem.connect("alice", "conn-alice");
        mem
    }

    fn ports(mem: &Memory) -> PresencePorts<'_, Memory, Memory, Memory, Memory> {
        PresencePorts {
            directory: mem,
            presence: mem,
            conversations: mem,
            poster: mem,
        }
    }

    const GRACE: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn coming_online_and_going_offline_are_told_to_co_members_once() {
        let mem = alice_and_bob_share_a_conversation().await;
        mem.connect("bob", "conn-bob");
        let online = change("bob", "conn-bob", ConnectionChange::Connected);
        assert_eq!(
            settle(&ports(&mem), &online, GRACE).await.unwrap(),
            Settled::Announced(1)
        );
        let frames = mem.frames_to("conn-alice");
        assert_eq!(frames.len(), 1);
        assert_eq!(
            (
                frames[0]["type"].as_str(),
                frames[0]["userId"].as_str(),
                frames[0]["status"].as_str()
            ),
            (Some("presence"), Some("bob"), Some("online"))
        );
        assert!(mem.frames_to("conn-bob").is_empty(), "not told about themself");
        assert_eq!(
            settle(&ports(&mem), &online, GRACE).await.unwrap(),
            Settled::Unchanged,
            "a repeated event says nothing new"
        );

        mem.remove_connection(&ConnectionId::parse("conn-bob").unwrap())
            .await
            .unwrap();
        let offline = change("bob", "conn-bob", ConnectionChange::Disconnected);
        assert_eq!(
            settle(&ports(&mem), &offline, GRACE).await.unwrap(),
            Settled::Announced(1)
        );
        let frames = mem.frames_to("conn-alice");
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1]["status"], "offline");
        assert!(frames[1]["lastSeen"].is_string(), "{}", frames[1]);
    }

    #[tokio::test]
    async fn a_reconnect_within_the_grace_announces_nothing() {
        let mem = alice_and_bob_share_a_conversation().await;
        mem.connect("bob", "conn-bob-1");
        settle(
            &ports(&mem),
            &change("bob", "conn-bob-1", ConnectionChange::Connected),
            GRACE,
        )
        .await
        .unwrap();
        let told = mem.frames_to("conn-alice").len();
        // A reload: the old socket closes, the new one opens before the grace is over.
        mem.remove_connection(&ConnectionId::parse("conn-bob-1").unwrap())
            .await
            .unwrap();
        let closed = change("bob", "conn-bob-1", ConnectionChange::Disconnected);
        let reconnect = async {
            tokio::time::sleep(GRACE / 5).await;
            mem.connect("bob", "conn-bob-2");
        };
        let settling = ports(&mem);
        let (settled, ()) = tokio::join!(settle(&settling, &closed, GRACE), reconnect);
        assert_eq!(settled.unwrap(), Settled::Unchanged);
        let opened = change("bob", "conn-bob-2", ConnectionChange::Connected);
        assert_eq!(settle(&ports(&mem), &opened, GRACE).await.unwrap(), Settled::Unchanged);
        assert_eq!(mem.frames_to("conn-alice").len(), told, "the flap reached nobody");
    }

    #[tokio::test]
    async fn presence_is_visible_to_co_members_and_oneself_only() {
        let mem = alice_and_bob_share_a_conversation().await;
        mem.connect("mallory", "conn-mallory");
        let asked = [user("alice"), user("bob"), user("mallory"), user("bob")];
        let seen = presence_of(&mem, &user("alice"), &asked).await.unwrap();
        let summary: Vec<(&str, PresenceStatus)> = seen.iter().map(|p| (p.user_id.as_str(), p.status)).collect();
        assert_eq!(
            summary,
            vec![("alice", PresenceStatus::Online), ("bob", PresenceStatus::Offline)],
            "mallory shares nothing with alice; bob once"
        );
        assert!(
            presence_of(&mem, &user("mallory"), &[user("bob")])
                .await
                .unwrap()
                .is_empty()
        );
    }
}
