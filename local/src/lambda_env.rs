//! The environment a function needs to run as a Lambda against this runtime's servers, written
//! by `make dev` (docs/local-runtime.md): the broker, DynamoDB Local, the gateway's `@connections`
//! API, the dev signing key, and the names of the topics and tables in force.
//! - `.local/lambda.env` for `cargo lambda watch --env-file`;
//! - `.local/sam-env.json` for `sam local invoke --env-vars`: SAM sets only the variables the
//!   template declares, so it holds those (with the broker's plaintext in place of the template's
//!   TLS and SASL); SAM passes the AWS credentials itself.

use std::path::Path;

use relaychat_adapters::dynamo::TableNames;
use relaychat_adapters::optional;
use relaychat_schema::Topics;

/// The variables of the environment the template declares (Globals, or the functions that use
/// them), which `sam local invoke --env-vars` may therefore set.
pub const SAM_VARIABLES: [&str; 7] = [
    "KAFKA_BROKERS",
    "DYNAMODB_ENDPOINT",
    "RELAYCHAT_TABLE_PREFIX",
    "WEBSOCKET_CALLBACK_URL",
    "KAFKA_SSL_ENABLED",
    "KAFKA_SASL_MECHANISM",
    "RUST_LOG",
];

/// What the functions read, for this runtime's servers.
pub struct LambdaEnv<'a> {
    pub brokers: &'a str,
    pub dynamodb_endpoint: &'a str,
    /// The gateway's `@connections` base, e.g. `http://127.0.0.1:3001/local`.
    pub callback_url: &'a str,
    pub jwt_secret: &'a str,
    pub topics: &'a Topics,
    pub tables: &'a TableNames,
}

impl LambdaEnv<'_> {
    /// `KEY=VALUE` pairs, one per variable.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let aws = |name: &str, default: &str| (name.to_owned(), optional(name).unwrap_or_else(|| default.into()));
        let mut pairs = vec![
            // DynamoDB Local accepts any credentials; nothing here talks to AWS.
            aws("AWS_ACCESS_KEY_ID", "local"),
            aws("AWS_SECRET_ACCESS_KEY", "local"),
            aws("AWS_REGION", "us-east-1"),
            ("KAFKA_BROKERS".into(), self.brokers.into()),
            ("DYNAMODB_ENDPOINT".into(), self.dynamodb_endpoint.into()),
            ("RELAYCHAT_TABLE_PREFIX".into(), self.tables.prefix().into()),
            ("WEBSOCKET_CALLBACK_URL".into(), self.callback_url.into()),
            ("RELAYCHAT_JWT_SECRET".into(), self.jwt_secret.into()),
            ("RUST_LOG".into(), optional("RUST_LOG").unwrap_or_else(|| "info".into())),
            // The local broker speaks plaintext; the template's values are for MSK.
            ("KAFKA_SSL_ENABLED".into(), "false".into()),
            ("KAFKA_SASL_MECHANISM".into(), String::new()),
        ];
        pairs.extend(
            self.topics
                .all()
                .map(|(name, spec)| (spec.env_var.to_owned(), name.to_owned())),
        );
        pairs
    }

    /// The variables `sam local invoke --env-vars` can set: those the template declares.
    pub fn sam_pairs(&self) -> Vec<(String, String)> {
        self.pairs()
            .into_iter()
            .filter(|(k, _)| SAM_VARIABLES.contains(&k.as_str()))
            .collect()
    }

    /// Writes the env file (`KEY=VALUE` lines) at `path`, creating its folder, and SAM's JSON
    /// (`{"Parameters": {...}}`, for every function) beside it as `sam-env.json`.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let text: String = self.pairs().into_iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(path, text)?;
        let parameters: serde_json::Map<String, serde_json::Value> =
            self.sam_pairs().into_iter().map(|(k, v)| (k, v.into())).collect();
        let sam = serde_json::json!({ "Parameters": parameters });
        std::fs::write(path.with_file_name("sam-env.json"), format!("{sam:#}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_env_names_every_server_topic_and_table_prefix() {
        let topics = Topics::from_lookup(|var| Some(format!("t-{var}")));
        let tables = TableNames::with_prefix("p-");
        let env = LambdaEnv {
            brokers: "127.0.0.1:19092",
            dynamodb_endpoint: "http://127.0.0.1:18000",
            callback_url: "http://127.0.0.1:3001/local",
            jwt_secret: "secret",
            topics: &topics,
            tables: &tables,
        };
        let pairs = env.pairs();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("KAFKA_BROKERS"), Some("127.0.0.1:19092"));
        assert_eq!(get("RELAYCHAT_TABLE_PREFIX"), Some("p-"));
        assert_eq!(get("WEBSOCKET_CALLBACK_URL"), Some("http://127.0.0.1:3001/local"));
        assert_eq!(get("KAFKA_TOPIC_CHAT_MESSAGES"), Some("t-KAFKA_TOPIC_CHAT_MESSAGES"));
        let dir = std::env::temp_dir().join(format!("relaychat-env-{}", std::process::id()));
        let file = dir.join("lambda.env");
        env.write(&file).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.lines().all(|l| l.split_once('=').is_some()), "{text}");
        assert!(text.contains("DYNAMODB_ENDPOINT=http://127.0.0.1:18000\n"));
        let sam: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("sam-env.json")).unwrap()).unwrap();
        assert_eq!(sam["Parameters"]["KAFKA_SSL_ENABLED"], "false");
        assert_eq!(sam["Parameters"]["KAFKA_SASL_MECHANISM"], "");
        assert_eq!(sam["Parameters"].as_object().unwrap().len(), SAM_VARIABLES.len());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
