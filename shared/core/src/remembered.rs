//! Lookups remembered in the execution environment so a request does not pay a round trip for
//! them again:
//! - a connection's identity, fixed at `$connect` (still served only until its token expires);
//! - a conversation and its members, for `MEMBERS_TTL`: members change (addMembers,
//!   removeMember, leaveConversation), and another execution environment learns of it within that
//!   time. This one forgets at once what it changed itself, and a change that finds the members
//!   moved on reads them again.
//!
//! Each memory holds at most `CAPACITY` entries and starts afresh when full.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use relaychat_schema::protocol::{ConversationSummary, MessageView};
use relaychat_schema::{ClientMessageId, ConnectionId, ConversationId, DeliveryStatus, MessageId, Title, UserId};
use tokio::time::Instant;

use crate::Error;
use crate::limits::{Budget, Limited};
use crate::ports::{
    AnalyticsStore, Announced, ConnectionDirectory, ConnectionRegistry, Conversation, ConversationStore, Counted,
    Device, DeviceStore, Identity, PresenceStore, SendClaim,
};

use crate::bounded::BoundedMap;
pub use crate::bounded::CAPACITY;

/// How long a conversation's members are trusted once read: a member removed elsewhere may still
/// send through this execution environment for up to this long.
pub const MEMBERS_TTL: Duration = Duration::from_secs(5);

/// A store whose immutable lookups are remembered (see the module).
pub struct Remembered<S> {
    inner: S,
    identities: BoundedMap<ConnectionId, Identity>,
    conversations: BoundedMap<ConversationId, (Instant, Conversation)>,
}

impl<S> Remembered<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            identities: BoundedMap::new(),
            conversations: BoundedMap::new(),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

fn unexpired(identity: &Identity, now: DateTime<Utc>) -> bool {
    identity.expires_at.is_none_or(|at| at > now)
}

impl<S: ConnectionRegistry + Send> ConnectionRegistry for Remembered<S> {
    async fn register(&self, connection: &ConnectionId, identity: &Identity) -> Result<(), Error> {
        self.inner.register(connection, identity).await?;
        self.identities.put(connection.clone(), identity.clone());
        Ok(())
    }
    async fn unregister(&self, connection: &ConnectionId) -> Result<(), Error> {
        self.identities.forget(connection);
        self.inner.unregister(connection).await
    }
    async fn identity_of(&self, connection: &ConnectionId) -> Result<Option<Identity>, Error> {
        if let Some(identity) = self.identities.get(connection) {
            // The expiry holds whether the identity was remembered or read.
            return Ok(unexpired(&identity, Utc::now()).then_some(identity));
        }
        let identity = self.inner.identity_of(connection).await?;
        if let Some(i) = &identity {
            self.identities.put(connection.clone(), i.clone());
        }
        Ok(identity)
    }
    async fn allow(&self, budget: Budget<'_>, action: Limited, now: DateTime<Utc>) -> Result<bool, Error> {
        self.inner.allow(budget, action, now).await
    }
}

impl<S: ConversationStore + Send> ConversationStore for Remembered<S> {
    async fn create_conversation(
        &self,
        conversation: &Conversation,
        request: Option<&ClientMessageId>,
    ) -> Result<Conversation, Error> {
        let created = self.inner.create_conversation(conversation, request).await?;
        self.conversations
            .put(created.id.clone(), (Instant::now(), created.clone()));
        Ok(created)
    }
    async fn conversation(&self, id: &ConversationId) -> Result<Option<Conversation>, Error> {
        if let Some((at, c)) = self.conversations.get(id)
            && at.elapsed() < MEMBERS_TTL
        {
            return Ok(Some(c));
        }
        let found = self.inner.conversation(id).await?;
        match &found {
            Some(c) => self.conversations.put(id.clone(), (Instant::now(), c.clone())),
            None => self.conversations.forget(id),
        }
        Ok(found)
    }
    async fn set_members(&self, current: &Conversation, members: &[UserId]) -> Result<Option<Conversation>, Error> {
        // Changed or not, what this memory holds may be stale now.
        self.conversations.forget(&current.id);
        self.inner.set_members(current, members).await
    }
    async fn claim_send(&self, claim: &SendClaim) -> Result<Option<SendClaim>, Error> {
        self.inner.claim_send(claim).await
    }
    async fn add_to_large(&self, current: &Conversation, added: &[UserId]) -> Result<Option<Conversation>, Error> {
        self.conversations.forget(&current.id);
        self.inner.add_to_large(current, added).await
    }
    async fn remove_from_large(&self, current: &Conversation, member: &UserId) -> Result<Option<Conversation>, Error> {
        self.conversations.forget(&current.id);
        self.inner.remove_from_large(current, member).await
    }
    /// Not remembered: a large group's membership is one key read, and a removal takes effect at once.
    async fn is_member(&self, conversation: &ConversationId, user: &UserId) -> Result<bool, Error> {
        self.inner.is_member(conversation, user).await
    }
    async fn read_by(
        &self,
        conversation: &ConversationId,
        sender: &UserId,
        messages: &[MessageId],
    ) -> Result<HashMap<MessageId, u64>, Error> {
        self.inner.read_by(conversation, sender, messages).await
    }
    async fn receipt_statuses(
        &self,
        messages: &[MessageId],
        recipients: &[UserId],
    ) -> Result<HashMap<MessageId, DeliveryStatus>, Error> {
        self.inner.receipt_statuses(messages, recipients).await
    }
    async fn set_title(&self, id: &ConversationId, title: Option<&Title>) -> Result<Option<Conversation>, Error> {
        self.conversations.forget(id);
        self.inner.set_title(id, title).await
    }
    async fn conversations_of(&self, user: &UserId) -> Result<Vec<ConversationSummary>, Error> {
        self.inner.conversations_of(user).await
    }
    async fn history(
        &self,
        conversation: &ConversationId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<(Vec<MessageView>, Option<MessageId>), Error> {
        self.inner.history(conversation, before, limit).await
    }
    async fn message(&self, conversation: &ConversationId, id: MessageId) -> Result<Option<MessageView>, Error> {
        self.inner.message(conversation, id).await
    }
}

impl<S: DeviceStore + Send> DeviceStore for Remembered<S> {
    async fn register_device(&self, device: &Device) -> Result<(), Error> {
        self.inner.register_device(device).await
    }
    async fn devices_of(&self, user: &UserId) -> Result<Vec<Device>, Error> {
        self.inner.devices_of(user).await
    }
    async fn remove_device(&self, device: &Device) -> Result<(), Error> {
        self.inner.remove_device(device).await
    }
}

/// Presence and connections change all the time: never remembered, always asked.
impl<S: ConnectionDirectory + Send> ConnectionDirectory for Remembered<S> {
    async fn connections_of(&self, user: &UserId) -> Result<Vec<ConnectionId>, Error> {
        self.inner.connections_of(user).await
    }
    async fn remove_connection(&self, connection: &ConnectionId) -> Result<(), Error> {
        self.inner.remove_connection(connection).await
    }
}

impl<S: PresenceStore + Send> PresenceStore for Remembered<S> {
    async fn announced(&self, user: &UserId) -> Result<Option<Announced>, Error> {
        self.inner.announced(user).await
    }
    async fn announce(&self, user: &UserId, announced: &Announced) -> Result<(), Error> {
        self.inner.announce(user, announced).await
    }
}

/// Counters grow all the time: never remembered. (Counting goes through analytics, not here.)
impl<S: AnalyticsStore + Send> AnalyticsStore for Remembered<S> {
    async fn count_once(&self, records: &[Counted]) -> Result<usize, Error> {
        self.inner.count_once(records).await
    }
    async fn counters(&self, rows: &[String]) -> Result<BTreeMap<String, BTreeMap<String, i64>>, Error> {
        self.inner.counters(rows).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Memory as Fake, user};
    use relaychat_schema::DisplayName;

    fn identity(expires_in_s: i64) -> Identity {
        Identity {
            user: user("alice"),
            name: DisplayName::parse("Alice").unwrap(),
            expires_at: Some(Utc::now() + chrono::Duration::seconds(expires_in_s)),
        }
    }

    #[tokio::test]
    async fn an_identity_is_read_once_and_still_expires() {
        let store = Remembered::new(Fake::default());
        let (live, short) = (
            ConnectionId::parse("bGl2ZQ==").unwrap(),
            ConnectionId::parse("c2hvcnQ=").unwrap(),
        );
        store.inner().register(&live, &identity(3600)).await.unwrap();
        assert!(store.identity_of(&live).await.unwrap().is_some());
        // Gone from the store underneath: still known here (a connection's identity never changes).
        store.inner().unregister(&live).await.unwrap();
        assert_eq!(
            store.identity_of(&live).await.unwrap().map(|i| i.user),
            Some(user("alice"))
        );
        // Unregistered through it: forgotten.
        store.unregister(&live).await.unwrap();
        assert!(store.identity_of(&live).await.unwrap().is_none());
        // A remembered identity whose token has expired is not served.
        store.register(&short, &identity(-1)).await.unwrap();
        assert!(store.identity_of(&short).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_conversation_is_read_once() {
        let store = Remembered::new(Fake::default());
        let c = Conversation {
            id: ConversationId::parse("c1").unwrap(),
            title: None,
            members: vec![user("alice"), user("bob")],
            created_by: user("alice"),
            created_at: Utc::now(),
            large: None,
        };
        store.inner().create_conversation(&c, None).await.unwrap();
        assert_eq!(store.conversation(&c.id).await.unwrap(), Some(c.clone()));
        store.inner().forget_conversation(&c.id);
        assert_eq!(store.conversation(&c.id).await.unwrap(), Some(c), "remembered");
        let unknown = ConversationId::parse("c2").unwrap();
        assert_eq!(
            store.conversation(&unknown).await.unwrap(),
            None,
            "an unknown one is not remembered"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn members_are_trusted_for_a_while_and_a_change_here_is_seen_at_once() {
        let store = Remembered::new(Fake::default());
        let c = Conversation {
            id: ConversationId::parse("c1").unwrap(),
            title: None,
            members: vec![user("alice"), user("bob"), user("carol")],
            created_by: user("alice"),
            created_at: Utc::now(),
            large: None,
        };
        store.inner().create_conversation(&c, None).await.unwrap();
        store.conversation(&c.id).await.unwrap();
        // Changed behind this memory's back (another execution environment).
        let without_carol = [user("alice"), user("bob")];
        store.inner().set_members(&c, &without_carol).await.unwrap();
        assert_eq!(
            store.conversation(&c.id).await.unwrap().unwrap().members.len(),
            3,
            "still trusted"
        );
        tokio::time::advance(MEMBERS_TTL).await;
        assert_eq!(
            store.conversation(&c.id).await.unwrap().unwrap().members,
            without_carol,
            "read again"
        );
        // Changed through this memory: seen at once.
        let current = store.conversation(&c.id).await.unwrap().unwrap();
        store.set_members(&current, &[user("alice")]).await.unwrap();
        assert_eq!(
            store.conversation(&c.id).await.unwrap().unwrap().members,
            [user("alice")]
        );
    }
}
