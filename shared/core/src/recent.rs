//! A user's live connections, remembered for a moment by the functions that post frames
//! (deliver-message, update-status, relay-typing), so a busy conversation does not query the
//! connections table for every message and every receipt.
//!
//! What staleness can cost, and why it is bounded:
//! - A connection that went away stays listed: its post answers 410 Gone, and it is forgotten at
//!   once (here and in the table), as without the memory.
//! - A device that connected since the lookup misses live frames for at most `ttl`. It caught up
//!   with `history` when it connected (the protocol's rule), and the message is stored, counted
//!   unread and, for a user with no connection at all, pushed.
//! - A user found with no connection is not remembered: the next message looks again, so a user
//!   who comes online is never taken for offline (no push instead of a frame, no missed frame).

use std::time::Duration;

use relaychat_schema::{ConnectionId, UserId};
use tokio::time::Instant;

use crate::Error;
use crate::bounded::BoundedMap;
use crate::ports::ConnectionDirectory;

/// How long a lookup is trusted unless configured: a second.
pub const DEFAULT_TTL: Duration = Duration::from_secs(1);

/// A directory whose non-empty lookups are remembered for `ttl` (zero: not at all).
pub struct RecentConnections<D> {
    inner: D,
    ttl: Duration,
    lists: BoundedMap<UserId, (Instant, Vec<ConnectionId>)>,
}

impl<D> RecentConnections<D> {
    pub fn new(inner: D, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            lists: BoundedMap::new(),
        }
    }

    fn fresh(&self, user: &UserId) -> Option<Vec<ConnectionId>> {
        let (at, list) = self.lists.get(user)?;
        (at.elapsed() < self.ttl).then_some(list)
    }

    fn remember(&self, user: &UserId, list: &[ConnectionId]) {
        if self.ttl.is_zero() || list.is_empty() {
            return;
        }
        self.lists.put(user.clone(), (Instant::now(), list.to_vec()));
    }

    fn forget(&self, connection: &ConnectionId) {
        self.lists.retain(|_, (_, list)| {
            list.retain(|c| c != connection);
            !list.is_empty()
        });
    }
}

impl<D: ConnectionDirectory + Send> ConnectionDirectory for RecentConnections<D> {
    async fn connections_of(&self, user: &UserId) -> Result<Vec<ConnectionId>, Error> {
        if let Some(list) = self.fresh(user) {
            return Ok(list);
        }
        let list = self.inner.connections_of(user).await?;
        self.remember(user, &list);
        Ok(list)
    }

    async fn remove_connection(&self, connection: &ConnectionId) -> Result<(), Error> {
        self.forget(connection);
        self.inner.remove_connection(connection).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Memory, user};
    use crate::ports::{ConnectionRegistry, Identity};

    async fn connect(mem: &Memory, who: &str, connection: &str) -> ConnectionId {
        let id = ConnectionId::parse(connection).unwrap();
        let identity = Identity {
            user: user(who),
            name: relaychat_schema::DisplayName::parse(who).unwrap(),
            expires_at: None,
        };
        mem.register(&id, &identity).await.unwrap();
        id
    }

    #[tokio::test(start_paused = true)]
    async fn a_lookup_is_trusted_for_the_ttl_then_read_again() {
        let mem = Memory::default();
        let first = connect(&mem, "bob", "c1").await;
        let recent = RecentConnections::new(&mem, Duration::from_secs(1));
        assert_eq!(recent.connections_of(&user("bob")).await.unwrap(), vec![first.clone()]);
        let second = connect(&mem, "bob", "c2").await;
        tokio::time::advance(Duration::from_millis(900)).await;
        assert_eq!(
            recent.connections_of(&user("bob")).await.unwrap(),
            vec![first.clone()],
            "remembered"
        );
        tokio::time::advance(Duration::from_millis(100)).await;
        let mut now = recent.connections_of(&user("bob")).await.unwrap();
        now.sort();
        assert_eq!(now, vec![first, second], "read again after the ttl");
    }

    #[tokio::test(start_paused = true)]
    async fn no_connection_is_never_remembered_and_a_gone_one_is_forgotten_at_once() {
        let mem = Memory::default();
        let recent = RecentConnections::new(&mem, Duration::from_secs(60));
        assert!(recent.connections_of(&user("bob")).await.unwrap().is_empty());
        let c1 = connect(&mem, "bob", "c1").await;
        assert_eq!(recent.connections_of(&user("bob")).await.unwrap(), vec![c1.clone()]);
        recent.remove_connection(&c1).await.unwrap();
        assert!(
            mem.connections_of(&user("bob")).await.unwrap().is_empty(),
            "removed in the store"
        );
        let c2 = connect(&mem, "bob", "c2").await;
        assert_eq!(
            recent.connections_of(&user("bob")).await.unwrap(),
            vec![c2],
            "the emptied list was not kept"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_ttl_remembers_nothing() {
        let mem = Memory::default();
        let recent = RecentConnections::new(&mem, Duration::ZERO);
        connect(&mem, "bob", "c1").await;
        assert_eq!(recent.connections_of(&user("bob")).await.unwrap().len(), 1);
        connect(&mem, "bob", "c2").await;
        assert_eq!(recent.connections_of(&user("bob")).await.unwrap().len(), 2);
    }
}
