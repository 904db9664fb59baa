//! Users' announced presence: a `presence#<userId>` row in the connections table (API Gateway's
//! connection ids never hold `#`, and the row has no `userId`, so the `byUser` index never lists
//! it as a connection). The live truth is the connections themselves.

use chrono::{DateTime, Utc};
use relaychat_core::Error;
use relaychat_core::ports::{Announced, PresenceStore};
use relaychat_schema::UserId;
use relaychat_schema::protocol::PresenceStatus;

use super::{DynamoStore, get_n, get_s, n, s};
use crate::aws::classify;

fn key(user: &UserId) -> String {
    format!("presence#{user}")
}

fn status_name(status: PresenceStatus) -> &'static str {
    match status {
        PresenceStatus::Online => "online",
        PresenceStatus::Offline => "offline",
    }
}

impl PresenceStore for DynamoStore {
    async fn announced(&self, user: &UserId) -> Result<Option<Announced>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(self.tables.connections())
            .key("connectionId", s(key(user)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("read presence", e))?;
        Ok(out.item().and_then(|i| {
            super::readable("presence", i, |i| {
                let millis = |name: &str| get_n(i, name).and_then(DateTime::<Utc>::from_timestamp_millis);
                Some(Announced {
                    status: match get_s(i, "status")? {
                        "online" => PresenceStatus::Online,
                        "offline" => PresenceStatus::Offline,
                        _ => return None,
                    },
                    last_seen: millis("lastSeen"),
                    at: millis("announcedAt")?,
                })
            })
        }))
    }

    async fn announce(&self, user: &UserId, announced: &Announced) -> Result<(), Error> {
        let mut request = self
            .client
            .update_item()
            .table_name(self.tables.connections())
            .key("connectionId", s(key(user)))
            .expression_attribute_values(":status", s(status_name(announced.status)))
            .expression_attribute_values(":at", n(announced.at.timestamp_millis()))
            // A redelivered, older settlement never overwrites a later one.
            .condition_expression("attribute_not_exists(announcedAt) OR announcedAt <= :at");
        request = match announced.last_seen {
            Some(seen) => request
                .update_expression("SET #status = :status, announcedAt = :at, lastSeen = :seen")
                .expression_attribute_values(":seen", n(seen.timestamp_millis())),
            None => request.update_expression("SET #status = :status, announcedAt = :at REMOVE lastSeen"),
        };
        match request.expression_attribute_names("#status", "status").send().await {
            Ok(_) => Ok(()),
            Err(e) if super::is_condition_failed(&e) => Ok(()),
            Err(e) => Err(classify("record presence", e)),
        }
    }
}
