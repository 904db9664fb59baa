//! Identifiers. Each is parsed once, at the edge, so the rest of the code never sees a bad one.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::SchemaError;

/// A message id: a ULID, so ids sort by creation time as strings (DynamoDB sort keys, cursors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "String")]
pub struct MessageId(ulid::Ulid);

/// One monotonic generator per process: ids minted here strictly increase, even within a millisecond.
static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());

impl MessageId {
    pub fn new() -> Self {
        let mut generator = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
        // Overflow needs 2^80 ids in one millisecond; fall back to a fresh random id rather than fail.
        Self(generator.generate().unwrap_or_else(|_| ulid::Ulid::new()))
    }

    pub fn from_ulid(ulid: ulid::Ulid) -> Self {
        Self(ulid)
    }

    pub fn parse(s: &str) -> Result<Self, SchemaError> {
        // Only the canonical (upper-case, 26-character) form: ids are compared as strings in storage.
        let ulid = ulid::Ulid::from_string(s).map_err(|e| SchemaError::field("messageId", e.to_string()))?;
        // Crockford's alphabet in upper case: what a ULID prints as, so nothing else reads as one.
        let canonical =
            |b: u8| b.is_ascii_digit() || (b.is_ascii_uppercase() && !matches!(b, b'I' | b'L' | b'O' | b'U'));
        if !s.bytes().all(canonical) {
            return Err(SchemaError::field("messageId", "not a canonical upper-case ULID"));
        }
        Ok(Self(ulid))
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Ulid;
        impl serde::de::Visitor<'_> for Ulid {
            type Value = MessageId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a ULID")
            }
            // Read from the borrowed text: a message id needs no allocation.
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MessageId, E> {
                MessageId::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Ulid)
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for MessageId {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for MessageId {
    type Error = SchemaError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<MessageId> for String {
    fn from(id: MessageId) -> Self {
        id.to_string()
    }
}

/// Defines a string id newtype limited to `1..=max` characters of `[A-Za-z0-9._@:=+-]`: safe in
/// DynamoDB keys, Kafka keys, URLs and log lines alike.
macro_rules! token_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:literal) => {
        token_id!($(#[$doc])* $name, $field, $max, "");
    };
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:literal, $extra:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn parse(s: impl Into<String>) -> Result<Self, SchemaError> {
                let s = s.into();
                check_token($field, &s, Self::MAX_LEN, $extra)?;
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
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

token_id!(
    /// A user id: the `sub` of the user's token.
    UserId, "userId", 64
);
token_id!(
    /// A conversation id (the server mints ULIDs; any safe token is accepted).
    ConversationId, "conversationId", 64
);
token_id!(
    /// An API Gateway connection id: standard base64 (e.g. `L0SM9cOFvHcCIhw=`), so `/` too.
    ConnectionId, "connectionId", 128, "/"
);
token_id!(
    /// The client's own id for a message it sends, echoed in the `ack` so it can match them up.
    ClientMessageId, "clientMessageId", 64
);
token_id!(
    /// A push device token (FCM registration tokens are ~160 characters of `[A-Za-z0-9_:-]`).
    /// At most 1,024 bytes: the devices table keeps it as a sort key, DynamoDB's limit.
    DeviceToken, "token", 1024, "_"
);

/// The bytes every token id may hold: `[A-Za-z0-9._@:=+-]`, as a table (one load a byte).
const TOKEN_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'@' | b':' | b'=' | b'+' | b'-');
        b += 1;
    }
    table
};

fn check_token(field: &'static str, s: &str, max: usize, extra: &str) -> Result<(), SchemaError> {
    if s.is_empty() {
        return Err(SchemaError::field(field, "must not be empty"));
    }
    if s.len() > max {
        return Err(SchemaError::field(field, format!("longer than {max} characters")));
    }
    let allowed = |b: &u8| TOKEN_BYTES[usize::from(*b)] || extra.as_bytes().contains(b);
    // A byte refused after only ASCII ones starts a character: name that character.
    if let Some(c) = s.bytes().position(|b| !allowed(&b)).and_then(|i| s[i..].chars().next()) {
        return Err(SchemaError::field(field, format!("character {c:?} is not allowed")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_sort_by_time_as_strings() {
        let a = MessageId::from_ulid(ulid::Ulid::from_parts(1_000, 5));
        let b = MessageId::from_ulid(ulid::Ulid::from_parts(2_000, 1));
        assert!(a.to_string() < b.to_string());
        assert!(a < b);
    }

    #[test]
    fn ids_minted_in_one_process_strictly_increase() {
        let ids: Vec<MessageId> = (0..1_000).map(|_| MessageId::new()).collect();
        assert!(
            ids.windows(2)
                .all(|w| w[0] < w[1] && w[0].to_string() < w[1].to_string())
        );
    }

    #[test]
    fn message_id_refuses_lower_case_and_garbage() {
        let id = MessageId::new().to_string();
        assert!(MessageId::parse(&id).is_ok());
        assert!(MessageId::parse(&id.to_lowercase()).is_err());
        assert!(MessageId::parse("not-a-ulid").is_err());
    }

    #[test]
    fn token_ids_enforce_length_and_charset() {
        assert!(UserId::parse("alice").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a".repeat(65)).is_err());
        assert!(UserId::parse("a b").is_err());
        assert!(ConnectionId::parse("L0SM9cOFvHcCIhw=").is_ok());
        assert!(
            ConnectionId::parse("a/b+c=").is_ok(),
            "connection ids are standard base64"
        );
        assert!(UserId::parse("a/b").is_err());
        let err = serde_json::from_str::<UserId>("\"bad/id\"").unwrap_err().to_string();
        assert!(err.contains("userId"), "{err}");
    }
}
