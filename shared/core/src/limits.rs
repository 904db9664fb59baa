//! Rate limits on the actions a client can flood: fixed windows, counted in a stored row (the
//! connection's own, or over HTTP the user's), so every instance of a function sees one budget.

use chrono::{DateTime, Utc};
use relaychat_schema::{ConnectionId, UserId};

/// Whose budget an action spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget<'a> {
    /// A WebSocket connection's: it lives and dies with the connection (a gone one has none).
    Connection(&'a ConnectionId),
    /// Over HTTP there is no connection: the user's, shared by all their HTTP clients.
    User(&'a UserId),
}

/// An action with a budget per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limited {
    Typing,
    SendMessage,
    CreateConversation,
}

/// At most `max` actions in each window of `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u32,
    pub window_ms: i64,
}

impl Limited {
    pub const ALL: [Limited; 3] = [Limited::Typing, Limited::SendMessage, Limited::CreateConversation];

    pub fn limit(self) -> RateLimit {
        match self {
            // Clients send "typing" on keystrokes; two a second is plenty for an indicator.
            Limited::Typing => RateLimit { max: 1, window_ms: 500 },
            Limited::SendMessage => RateLimit {
                max: 10,
                window_ms: 1_000,
            },
            Limited::CreateConversation => RateLimit {
                max: 5,
                window_ms: 10_000,
            },
        }
    }

    /// The attribute prefix in a connection row.
    pub fn name(self) -> &'static str {
        match self {
            Limited::Typing => "typing",
            Limited::SendMessage => "send",
            Limited::CreateConversation => "create",
        }
    }

    /// What the client is told when over budget.
    pub fn describe(self) -> String {
        let l = self.limit();
        let what = match self {
            Limited::Typing => "typing indicators",
            Limited::SendMessage => "messages",
            Limited::CreateConversation => "new conversations",
        };
        format!("{what}: at most {} per {} ms", l.max, l.window_ms)
    }

    /// The window `now` falls in (its start, in epoch milliseconds).
    pub fn window(self, now: DateTime<Utc>) -> i64 {
        let w = self.limit().window_ms;
        now.timestamp_millis().div_euclid(w) * w
    }
}
