use crate::kafka::RecordId;

/// Everything that can be wrong with data that reaches relaychat. All of it is permanent: the same
/// bytes will fail the same way on every retry, so callers dead-letter instead of retrying.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{field}: {reason}")]
    InvalidField { field: &'static str, reason: String },

    #[error("record {record}: field `{field}` is not valid base64")]
    InvalidBase64 {
        record: RecordId,
        field: &'static str,
        #[source]
        source: base64::DecodeError,
    },

    #[error("record {record}: timestamp {millis} ms is out of range")]
    TimestampOutOfRange { record: RecordId, millis: i64 },

    #[error("record {record}: has no value")]
    MissingValue { record: RecordId },

    #[error("record {record}: invalid payload: {source}")]
    InvalidPayload {
        record: RecordId,
        #[source]
        source: Box<SchemaError>,
    },

    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),

    #[error("unsupported schemaVersion {found} (this build reads up to {supported})")]
    UnsupportedVersion { found: u32, supported: u32 },
}

impl SchemaError {
    pub(crate) fn field(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}
