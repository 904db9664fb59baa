//! kafka-topics: the deployment's Kafka topics, as a CloudFormation custom resource
//! (`Custom::KafkaTopics` in template.yaml).
//! - Create and Update apply the topic catalogue with the operator's own `relaychat topics apply`:
//!   missing topics (the catalogue's and every consumer's dead-letter topic) are created with
//!   their partitions, retention and the resource's `Replication`; existing ones are kept, and one
//!   with fewer partitions than the catalogue's is named in the answer (repartitioning would move
//!   keys between partitions).
//! - Delete removes nothing (the topics hold the messages not yet consumed, as the tables keep
//!   theirs) and touches no broker, so a stack can be deleted when the cluster is gone.
//! - Every request is answered on its `ResponseURL`, a failure with its reason: a stack never waits
//!   for an answer that will not come.

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::event::cloudformation::{
    CloudFormationCustomResourceRequest, CloudFormationCustomResourceResponse,
    CloudFormationCustomResourceResponseStatus,
};
use relaychat_adapters::kafka::KafkaSettings;
use relaychat_admin::topics::{Applied, BROKER_DEFAULT_REPLICATION, apply, catalogue};
use relaychat_schema::Topics;
use serde_json::Value;
use tracing::{info, warn};

/// The function's name.
pub const NAME: &str = "kafka-topics";

/// How long applying the catalogue may take: well inside the function's timeout (120 s), so a
/// hung broker ends in a FAILED answer rather than a timed-out function that answers nothing.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Each attempt at delivering the answer to `ResponseURL`.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
const ANSWER_ATTEMPTS: u32 = 3;

/// Replication when the resource does not say (MSK's and most clusters' three brokers).
pub const DEFAULT_REPLICATION: i32 = 3;

/// CloudFormation limits the whole answer to 4 KB: the reason and each attribute are cut to fit.
const MAX_REASON: usize = 1_000;
const MAX_ATTRIBUTE: usize = 700;

/// Why an answer could not be delivered (the request itself always gets one, FAILED or not).
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    #[error("could not deliver the answer to CloudFormation")]
    Deliver(#[source] reqwest::Error),
    #[error("CloudFormation's response URL refused the answer: HTTP {0}")]
    Refused(u16),
    #[error("could not build the HTTP client")]
    Client(#[source] reqwest::Error),
}

impl TopicsError {
    /// Worth another attempt: the network or the response URL's server, not the answer.
    pub fn is_retryable(&self) -> bool {
        match self {
            TopicsError::Deliver(_) => true,
            TopicsError::Refused(status) => *status >= 500,
            TopicsError::Client(_) => false,
        }
    }
}

/// The custom resource's handler, built once per execution environment.
pub struct KafkaTopics {
    /// The functions' Kafka settings, or why they could not be had (answered as FAILED).
    settings: Result<KafkaSettings, String>,
    topics: Topics,
    consumers: Vec<String>,
    apply_timeout: Duration,
    http: reqwest::Client,
}

impl KafkaTopics {
    pub fn new(
        settings: Result<KafkaSettings, String>,
        topics: Topics,
        consumers: Vec<String>,
        apply_timeout: Duration,
    ) -> Result<Self, TopicsError> {
        let http = reqwest::Client::builder()
            .timeout(ANSWER_TIMEOUT)
            .build()
            .map_err(TopicsError::Client)?;
        Ok(KafkaTopics {
            settings,
            topics,
            consumers,
            apply_timeout,
            http,
        })
    }

    /// Does what the request asks, then answers it on its `ResponseURL`.
    pub async fn handle(&self, request: &CloudFormationCustomResourceRequest) -> Result<(), TopicsError> {
        let (url, answer) = self.answer(request).await;
        info!(status = ?answer.status, reason = ?answer.reason, "answering CloudFormation");
        self.deliver(url, &answer).await
    }

    /// What the request gets: its response URL and the answer to put there.
    pub async fn answer<'r>(
        &self,
        request: &'r CloudFormationCustomResourceRequest,
    ) -> (&'r str, CloudFormationCustomResourceResponse) {
        use CloudFormationCustomResourceRequest::{Create, Delete, Update};
        let mut answer = CloudFormationCustomResourceResponse::default();
        let (url, outcome) = match request {
            Create(r) => {
                answer.physical_resource_id = physical_id(&r.logical_resource_id, &r.request_id);
                addressed(&mut answer, &r.stack_id, &r.request_id, &r.logical_resource_id);
                (r.response_url.as_str(), self.apply(&r.resource_properties).await)
            }
            Update(r) => {
                answer.physical_resource_id.clone_from(&r.physical_resource_id);
                addressed(&mut answer, &r.stack_id, &r.request_id, &r.logical_resource_id);
                (r.response_url.as_str(), self.apply(&r.resource_properties).await)
            }
            Delete(r) => {
                answer.physical_resource_id.clone_from(&r.physical_resource_id);
                addressed(&mut answer, &r.stack_id, &r.request_id, &r.logical_resource_id);
                let kept = "the topics are kept (delete them by hand if wanted)".to_owned();
                (r.response_url.as_str(), Ok((kept, HashMap::new())))
            }
            // A request type this function does not know (the enum may grow): refused, saying so.
            _ => ("", Err("unknown RequestType".to_owned())),
        };
        match outcome {
            Ok((reason, data)) => {
                answer.status = CloudFormationCustomResourceResponseStatus::Success;
                answer.reason = Some(reason);
                answer.data = data;
                (url, answer)
            }
            Err(reason) => (url, failed(answer, reason)),
        }
    }

    /// Applies the catalogue: what was done, as the answer's reason and data.
    async fn apply(&self, properties: &Value) -> Result<(String, HashMap<String, String>), String> {
        let replication = replication(properties)?;
        let settings = self.settings.as_ref().map_err(|e| format!("Kafka settings: {e}"))?;
        let consumers: Vec<&str> = self.consumers.iter().map(String::as_str).collect();
        let wanted = catalogue(&self.topics, &consumers);
        let applied = tokio::time::timeout(
            self.apply_timeout,
            apply(settings, &wanted, replication, self.apply_timeout / 2),
        )
        .await
        .map_err(|_| {
            format!(
                "the brokers did not answer within {} s ({})",
                self.apply_timeout.as_secs(),
                settings.brokers
            )
        })?
        .map_err(|e| relaychat_core::chain(&e))?;
        let mut created = Vec::new();
        let mut present = 0;
        let mut fewer = Vec::new();
        let mut differs = Vec::new();
        for (topic, outcome) in applied {
            match outcome {
                Applied::Created => created.push(topic),
                Applied::Present => present += 1,
                Applied::FewerPartitions { has, wants } => {
                    warn!(%topic, has, wants, "fewer partitions than the catalogue: left alone");
                    fewer.push(format!("{topic} (has {has}, catalogue {wants})"));
                }
                Applied::Differs(drift) => {
                    let drift: Vec<String> = drift.iter().map(ToString::to_string).collect();
                    warn!(%topic, drift = %drift.join("; "), "configs differ from the catalogue: left alone");
                    differs.push(format!("{topic} ({})", drift.join("; ")));
                }
            }
        }
        let reason = format!(
            "created {}, present {present}, fewer partitions {}, other configs {}",
            created.len(),
            fewer.len(),
            differs.len()
        );
        let data = HashMap::from([
            ("Created".to_owned(), cut(created.join(","), MAX_ATTRIBUTE)),
            ("Present".to_owned(), present.to_string()),
            ("FewerPartitions".to_owned(), cut(fewer.join(", "), MAX_ATTRIBUTE)),
            ("Differs".to_owned(), cut(differs.join(", "), MAX_ATTRIBUTE)),
        ]);
        Ok((reason, data))
    }

    /// Puts the answer on the response URL (a pre-signed S3 URL: no content type), a few times if
    /// the network fails.
    async fn deliver(&self, url: &str, answer: &CloudFormationCustomResourceResponse) -> Result<(), TopicsError> {
        let body = serde_json::to_vec(answer).unwrap_or_default();
        let mut attempt = 1;
        loop {
            let result = match self.http.put(url).body(body.clone()).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => Err(TopicsError::Refused(r.status().as_u16())),
                Err(e) => Err(TopicsError::Deliver(e)),
            };
            match result {
                Err(e) if e.is_retryable() && attempt < ANSWER_ATTEMPTS => {
                    warn!(attempt, error = %e, "answer not delivered; trying again");
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// The resource's `Replication` property (CloudFormation passes numbers as strings); `default`
/// leaves it to the brokers (MSK Serverless).
fn replication(properties: &Value) -> Result<i32, String> {
    let value = match properties.get("Replication") {
        None | Some(Value::Null) => return Ok(DEFAULT_REPLICATION),
        Some(Value::String(s)) if s.trim() == "default" => return Ok(BROKER_DEFAULT_REPLICATION),
        Some(Value::String(s)) => s.trim().parse::<i32>().ok(),
        Some(Value::Number(n)) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        Some(_) => None,
    };
    match value {
        Some(n) if (1..=16).contains(&n) => Ok(n),
        _ => Err(format!(
            "Replication must be a whole number from 1 to 16 or \"default\", not {}",
            properties["Replication"]
        )),
    }
}

/// One id for the resource's life: CloudFormation deletes the old one when an update changes it.
fn physical_id(logical_id: &str, request_id: &str) -> String {
    let short: String = request_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    format!("{logical_id}-{short}")
}

/// `text`, cut to at most `max` bytes on a character boundary.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut at = max;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
    }
    text
}

/// The answer names the stack, the request and the resource it answers.
fn addressed(answer: &mut CloudFormationCustomResourceResponse, stack: &str, request: &str, logical: &str) {
    stack.clone_into(&mut answer.stack_id);
    request.clone_into(&mut answer.request_id);
    logical.clone_into(&mut answer.logical_resource_id);
}

fn failed(mut answer: CloudFormationCustomResourceResponse, reason: String) -> CloudFormationCustomResourceResponse {
    warn!(%reason, "the request failed");
    answer.status = CloudFormationCustomResourceResponseStatus::Failed;
    answer.reason = Some(cut(reason, MAX_REASON));
    if answer.physical_resource_id.is_empty() {
        answer.physical_resource_id = "kafka-topics-failed".into();
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_is_read_as_cloudformation_passes_it() {
        assert_eq!(replication(&serde_json::json!({})), Ok(3));
        assert_eq!(replication(&serde_json::json!({"Replication": "2"})), Ok(2));
        assert_eq!(replication(&serde_json::json!({"Replication": 1})), Ok(1));
        assert_eq!(
            replication(&serde_json::json!({"Replication": "default"})),
            Ok(BROKER_DEFAULT_REPLICATION)
        );
        for bad in [
            serde_json::json!({"Replication": "three"}),
            serde_json::json!({"Replication": "0"}),
            serde_json::json!({"Replication": [3]}),
        ] {
            let err = replication(&bad).unwrap_err();
            assert!(err.starts_with("Replication must be"), "{err}");
        }
    }

    #[test]
    fn a_long_reason_is_cut_on_a_character_boundary() {
        let answer = failed(CloudFormationCustomResourceResponse::default(), "é".repeat(800));
        let reason = answer.reason.unwrap();
        assert!(reason.len() <= MAX_REASON && reason.len() >= MAX_REASON - 1);
        assert_eq!(answer.status, CloudFormationCustomResourceResponseStatus::Failed);
        assert_eq!(answer.physical_resource_id, "kafka-topics-failed");
    }

    #[test]
    fn the_physical_id_is_the_logical_id_and_part_of_the_request() {
        assert_eq!(
            physical_id("KafkaTopics", "unique-id-1234-5678-aaaa"),
            "KafkaTopics-uniqueid1234"
        );
    }
}
