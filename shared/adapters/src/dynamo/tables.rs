//! Table names and definitions. The local runtime and the tests create the tables from these;
//! template.yaml declares the same ones for AWS (a test checks they agree).

/// The names of relaychat's tables: a prefix (`RELAYCHAT_TABLE_PREFIX`, default `relaychat-`)
/// before each base name. Tests use a fresh prefix each, so they never share a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    prefix: String,
}

/// Index of the connections table by user.
pub const CONNECTIONS_BY_USER: &str = "byUser";
/// Index of the memberships table by conversation (keys only): a large group's members.
pub const MEMBERSHIPS_BY_CONVERSATION: &str = "byConversation";

/// One table's shape.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    pub base: &'static str,
    pub partition_key: &'static str,
    pub sort_key: Option<&'static str>,
    pub ttl_attribute: Option<&'static str>,
}

pub const TABLES: [TableSpec; 8] = [
    TableSpec {
        base: "messages",
        partition_key: "conversationId",
        sort_key: Some("messageId"),
        ttl_attribute: None,
    },
    TableSpec {
        base: "conversations",
        partition_key: "conversationId",
        sort_key: None,
        // createConversation's idempotency keys expire; conversations have no expiresAt.
        ttl_attribute: Some("expiresAt"),
    },
    TableSpec {
        base: "memberships",
        partition_key: "userId",
        sort_key: Some("conversationId"),
        ttl_attribute: None,
    },
    TableSpec {
        base: "connections",
        partition_key: "connectionId",
        sort_key: None,
        ttl_attribute: Some("expiresAt"),
    },
    TableSpec {
        base: "receipts",
        partition_key: "messageId",
        sort_key: Some("userId"),
        ttl_attribute: None,
    },
    TableSpec {
        base: "devices",
        partition_key: "userId",
        sort_key: Some("token"),
        ttl_attribute: None,
    },
    TableSpec {
        base: "notifications",
        partition_key: "userId",
        sort_key: Some("notificationId"),
        ttl_attribute: Some("expiresAt"),
    },
    TableSpec {
        base: "analytics",
        partition_key: "counter",
        sort_key: None,
        // Remembered records expire; counters have no expiresAt.
        ttl_attribute: Some("expiresAt"),
    },
];

impl Default for TableNames {
    fn default() -> Self {
        Self::with_prefix("relaychat-")
    }
}

impl TableNames {
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    pub fn from_env() -> Self {
        crate::optional("RELAYCHAT_TABLE_PREFIX")
            .map(Self::with_prefix)
            .unwrap_or_default()
    }

    pub fn name(&self, base: &str) -> String {
        format!("{}{base}", self.prefix)
    }

    /// What `RELAYCHAT_TABLE_PREFIX` gives a function to find these tables.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn messages(&self) -> String {
        self.name("messages")
    }
    pub fn conversations(&self) -> String {
        self.name("conversations")
    }
    pub fn memberships(&self) -> String {
        self.name("memberships")
    }
    pub fn connections(&self) -> String {
        self.name("connections")
    }
    pub fn receipts(&self) -> String {
        self.name("receipts")
    }
    pub fn devices(&self) -> String {
        self.name("devices")
    }
    pub fn notifications(&self) -> String {
        self.name("notifications")
    }
    pub fn analytics(&self) -> String {
        self.name("analytics")
    }
}

#[cfg(any(test, feature = "dev"))]
mod provision;
#[cfg(any(test, feature = "dev"))]
pub use provision::create_tables;
