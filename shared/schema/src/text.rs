//! Free-text fields with the limits of the wire protocol.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::SchemaError;

macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Limit in characters (Unicode scalar values), not bytes.
            pub const MAX_CHARS: usize = $max;

            pub fn parse(s: impl Into<String>) -> Result<Self, SchemaError> {
                let s = s.into();
                if s.trim().is_empty() {
                    return Err(SchemaError::field($field, "must not be empty"));
                }
                if s.chars().count() > Self::MAX_CHARS {
                    return Err(SchemaError::field($field, format!("longer than {} characters", Self::MAX_CHARS)));
                }
                Ok(Self(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = SchemaError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(t: $name) -> Self {
                t.0
            }
        }
    };
}

bounded_text!(
    /// A chat message's text: 1 to 4,000 characters, not only white space.
    MessageContent, "content", 4_000
);
bounded_text!(
    /// A user's display name (the token's `name`).
    DisplayName, "name", 100
);
bounded_text!(
    /// A conversation's title.
    Title, "title", 200
);

impl MessageContent {
    /// A short preview for push notifications and conversation lists.
    pub fn preview(&self, max_chars: usize) -> String {
        if self.0.chars().count() <= max_chars {
            return self.0.clone();
        }
        let mut s: String = self.0.chars().take(max_chars.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_counted_in_characters_not_bytes() {
        assert!(MessageContent::parse("é".repeat(4_000)).is_ok());
        assert!(MessageContent::parse("é".repeat(4_001)).is_err());
        assert!(MessageContent::parse("  \n").is_err());
    }

    #[test]
    fn preview_cuts_on_a_character_boundary() {
        let c = MessageContent::parse("héllo wörld").unwrap();
        assert_eq!(c.preview(5), "héll…");
        assert_eq!(c.preview(50), "héllo wörld");
    }
}
