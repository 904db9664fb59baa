//! relay-typing: typing indicators to the other members' live connections; nothing is stored.

use chrono::{DateTime, Duration, Utc};
use relaychat_schema::TypingIndicator;
use relaychat_schema::frames::ServerFrame;

use crate::Error;
use crate::fanout::post_to_user;
use crate::ports::{ConnectionDirectory, FramePoster};

/// An indicator older than this is dropped: by the time it arrived it no longer says anything.
pub const TYPING_TTL: Duration = Duration::seconds(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relayed {
    To(usize),
    Stale,
}

pub async fn relay_typing(
    directory: &impl ConnectionDirectory,
    poster: &impl FramePoster,
    indicator: &TypingIndicator,
    now: DateTime<Utc>,
) -> Result<Relayed, Error> {
    if now - indicator.at > TYPING_TTL {
        return Ok(Relayed::Stale);
    }
    let frame = ServerFrame::Typing {
        conversation_id: &indicator.conversation_id,
        user_id: &indicator.user_id,
        is_typing: indicator.is_typing,
    }
    .to_bytes();
    let mut reached = 0;
    for member in indicator.recipients.iter().filter(|r| **r != indicator.user_id) {
        reached += post_to_user(directory, poster, member, &frame).await?;
    }
    Ok(Relayed::To(reached))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Memory, typing};

    #[tokio::test]
    async fn fresh_indicators_reach_the_others_and_stale_ones_are_dropped() {
        let mem = Memory::default();
        mem.connect("bob", "conn-bob");
        mem.connect("alice", "conn-alice");
        let t = typing("c1", "alice", &["alice", "bob"]);
        assert_eq!(relay_typing(&mem, &mem, &t, t.at).await.unwrap(), Relayed::To(1));
        assert_eq!(mem.frames_to("conn-bob")[0]["type"], "typing");
        assert!(
            mem.frames_to("conn-alice").is_empty(),
            "the typist does not get their own indicator"
        );
        let later = t.at + Duration::seconds(30);
        assert_eq!(relay_typing(&mem, &mem, &t, later).await.unwrap(), Relayed::Stale);
        assert_eq!(mem.frames_to("conn-bob").len(), 1);
    }
}
