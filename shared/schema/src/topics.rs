//! The topic catalogue (docs/architecture.md, "Topics"): default names, overridable one by one from the environment.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    ChatMessages,
    MessageStatusEvents,
    TypingEvents,
    Notifications,
    AnalyticsEvents,
    PresenceEvents,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    pub kind: TopicKind,
    pub default_name: &'static str,
    pub env_var: &'static str,
    pub partitions: i32,
    pub retention: Duration,
}

const DAY: u64 = 24 * 60 * 60;

/// Partitions and retention of every dead-letter topic (`<consumer>-dlq`).
pub const DLQ_PARTITIONS: i32 = 1;
pub const DLQ_RETENTION: Duration = Duration::from_secs(14 * DAY);

impl TopicKind {
    pub const ALL: [TopicKind; 6] = [
        Self::ChatMessages,
        Self::MessageStatusEvents,
        Self::TypingEvents,
        Self::Notifications,
        Self::AnalyticsEvents,
        Self::PresenceEvents,
    ];

    pub fn spec(self) -> TopicSpec {
        let (default_name, env_var, retention) = match self {
            Self::ChatMessages => ("chat-messages", "KAFKA_TOPIC_CHAT_MESSAGES", 7 * DAY),
            Self::MessageStatusEvents => ("message-status-events", "KAFKA_TOPIC_MESSAGE_STATUS_EVENTS", DAY),
            Self::TypingEvents => ("typing-events", "KAFKA_TOPIC_TYPING_EVENTS", 60),
            Self::Notifications => ("notifications", "KAFKA_TOPIC_NOTIFICATIONS", 30 * DAY),
            Self::AnalyticsEvents => ("analytics-events", "KAFKA_TOPIC_ANALYTICS_EVENTS", 30 * DAY),
            // Connects and disconnects, keyed by user: only worth anything while fresh.
            Self::PresenceEvents => ("presence-events", "KAFKA_TOPIC_PRESENCE_EVENTS", DAY),
        };
        TopicSpec {
            kind: self,
            default_name,
            env_var,
            partitions: 3,
            retention: Duration::from_secs(retention),
        }
    }
}

/// The topic names in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub chat_messages: String,
    pub message_status_events: String,
    pub typing_events: String,
    pub notifications: String,
    pub analytics_events: String,
    pub presence_events: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self::from_lookup(|_| None)
    }
}

impl Topics {
    /// Names from the process environment, defaults where a variable is unset or empty.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let name = |kind: TopicKind| {
            let spec = kind.spec();
            lookup(spec.env_var)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| spec.default_name.to_owned())
        };
        Self {
            chat_messages: name(TopicKind::ChatMessages),
            message_status_events: name(TopicKind::MessageStatusEvents),
            typing_events: name(TopicKind::TypingEvents),
            notifications: name(TopicKind::Notifications),
            analytics_events: name(TopicKind::AnalyticsEvents),
            presence_events: name(TopicKind::PresenceEvents),
        }
    }

    pub fn name(&self, kind: TopicKind) -> &str {
        match kind {
            TopicKind::ChatMessages => &self.chat_messages,
            TopicKind::MessageStatusEvents => &self.message_status_events,
            TopicKind::TypingEvents => &self.typing_events,
            TopicKind::Notifications => &self.notifications,
            TopicKind::AnalyticsEvents => &self.analytics_events,
            TopicKind::PresenceEvents => &self.presence_events,
        }
    }

    /// Every topic with its spec, under the names in force.
    pub fn all(&self) -> impl Iterator<Item = (&str, TopicSpec)> {
        TopicKind::ALL.into_iter().map(|k| (self.name(k), k.spec()))
    }
}

/// The dead-letter topic of a consumer (a function's consumer group), e.g. `persist-message-dlq`.
pub fn dead_letter_topic(consumer: &str) -> String {
    format!("{consumer}-dlq")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_default_and_override_one_by_one() {
        let topics = Topics::from_lookup(|k| (k == "KAFKA_TOPIC_TYPING_EVENTS").then(|| "t-typing".to_owned()));
        assert_eq!(topics.chat_messages, "chat-messages");
        assert_eq!(topics.typing_events, "t-typing");
        assert_eq!(topics.all().count(), 6);
        assert_eq!(TopicKind::TypingEvents.spec().retention, Duration::from_secs(60));
        assert_eq!(dead_letter_topic("analytics"), "analytics-dlq");
    }
}
