//! Per-connection rate limits on the actions a client can flood: fixed windows, counted in the
//! connection's own row, so every instance of the function sees the same budget.

use chrono::{DateTime, Utc};

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
        format!("{what}: at most {} per {} ms on one connection", l.max, l.window_ms)
    }

    /// The window `now` falls in (its start, in epoch milliseconds).
    pub fn window(self, now: DateTime<Utc>) -> i64 {
        let w = self.limit().window_ms;
        now.timestamp_millis().div_euclid(w) * w
    }
}
