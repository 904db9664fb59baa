//! `topics apply`: the catalogue's topics (`relaychat_schema::topics`) and every consumer's
//! dead-letter topic, created where missing with the catalogue's partitions and retention. An
//! existing topic is left as it is (repartitioning would move keys between partitions and break
//! their order); one with fewer partitions than the catalogue says is reported.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ConfigResource, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;
use relaychat_adapters::kafka::{KafkaContext, KafkaSettings};
use relaychat_schema::Topics;
use relaychat_schema::topics::{DLQ_PARTITIONS, DLQ_RETENTION, dead_letter_topic};

use crate::AdminError;

/// Replication left to the brokers' default (MSK Serverless fixes it itself).
pub const BROKER_DEFAULT_REPLICATION: i32 = -1;

/// Kafka's default `segment.ms`.
const DEFAULT_SEGMENT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// With three or more replicas an acknowledged write (the producers use `acks=all`) is on two of
/// them; with fewer, on one. None when the brokers choose the replication.
pub fn min_insync_replicas(replication: i32) -> Option<i32> {
    match replication {
        r if r >= 3 => Some(2),
        r if r >= 1 => Some(1),
        _ => None,
    }
}

/// A topic as the catalogue wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub name: String,
    pub partitions: i32,
    pub retention: Duration,
}

/// The catalogue's topics (names as configured) and the consumers' dead-letter topics.
pub fn catalogue(topics: &Topics, consumers: &[&str]) -> Vec<Wanted> {
    let mut wanted: Vec<Wanted> = topics
        .all()
        .map(|(name, spec)| Wanted {
            name: name.to_owned(),
            partitions: spec.partitions,
            retention: spec.retention,
        })
        .collect();
    wanted.extend(consumers.iter().map(|c| Wanted::dead_letters(dead_letter_topic(c))));
    wanted
}

impl Wanted {
    /// A dead-letter topic, as every consumer's is.
    pub fn dead_letters(name: String) -> Self {
        Wanted {
            name,
            partitions: DLQ_PARTITIONS,
            retention: DLQ_RETENTION,
        }
    }
}

/// What `apply` found or did for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Created,
    /// There already, as the catalogue wants it (or with more partitions).
    Present,
    /// There with fewer partitions than the catalogue's: left alone, to be looked at.
    FewerPartitions {
        has: i32,
        wants: i32,
    },
    /// There with configs other than the catalogue's (a retention changed since, a topic made
    /// by hand): reported, left alone.
    Differs(Vec<Drift>),
}

/// A config an existing topic has otherwise than the catalogue wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub config: &'static str,
    pub has: Option<String>,
    pub wants: String,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let has = self.has.as_deref().unwrap_or("unset");
        write!(f, "{} is {has}, the catalogue {}", self.config, self.wants)
    }
}

/// The configs a topic is created with: the catalogue's retention; a segment as short as the
/// retention when that is under a week (a segment is deleted whole, so a minute of typing
/// indicators really ends after a minute); the in-sync replicas for `replication`.
pub fn configs(w: &Wanted, replication: i32) -> Vec<(&'static str, String)> {
    let retention = w.retention.as_millis().to_string();
    let mut configs = vec![("retention.ms", retention.clone())];
    if w.retention < DEFAULT_SEGMENT {
        configs.push(("segment.ms", retention));
    }
    if let Some(n) = min_insync_replicas(replication) {
        configs.push(("min.insync.replicas", n.to_string()));
    }
    configs
}

/// Creates what is missing (replication `replication`, or [`BROKER_DEFAULT_REPLICATION`]), and
/// says what it found. Each request to
/// the brokers gives up after `timeout` (a hung broker fails the call, it does not hang it).
pub async fn apply(
    settings: &KafkaSettings,
    wanted: &[Wanted],
    replication: i32,
    timeout: Duration,
) -> Result<Vec<(String, Applied)>, AdminError> {
    let admin: AdminClient<KafkaContext> = settings.client_config().create_with_context(settings.context())?;
    let configs: Vec<Vec<(&str, String)>> = wanted.iter().map(|w| configs(w, replication)).collect();
    let new: Vec<NewTopic> = wanted
        .iter()
        .zip(&configs)
        .map(|(w, configs)| {
            configs.iter().fold(
                NewTopic::new(&w.name, w.partitions, TopicReplication::Fixed(replication)),
                |topic, (name, value)| topic.set(name, value),
            )
        })
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout / 2));
    // What was created, and which were there already: those are looked at in one metadata
    // request and one DescribeConfigs for them all.
    let mut created = vec![false; wanted.len()];
    for (made, result) in created.iter_mut().zip(admin.create_topics(&new, &options).await?) {
        match result {
            Ok(_) => *made = true,
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(AdminError::Topic {
                    topic,
                    reason: code.to_string(),
                });
            }
        }
    }
    let existing: Vec<usize> = (0..wanted.len()).filter(|&i| !created[i]).collect();
    let (partitions, described) = if existing.is_empty() {
        (HashMap::new(), Vec::new())
    } else {
        let partitions = partitions_of(&admin, timeout)?;
        let specifiers: Vec<ResourceSpecifier> = existing
            .iter()
            .map(|&i| ResourceSpecifier::Topic(&wanted[i].name))
            .collect();
        let described = admin.describe_configs(&specifiers, &options).await?;
        (partitions, described)
    };
    // The brokers answer in the order asked (as for CreateTopics above).
    let mut described: HashMap<usize, _> = existing.iter().copied().zip(described).collect();
    let mut outcome = Vec::with_capacity(wanted.len());
    for (i, (w, configs)) in wanted.iter().zip(&configs).enumerate() {
        let applied = if created[i] {
            Applied::Created
        } else {
            let has = partitions.get(w.name.as_str()).copied().unwrap_or(0);
            if has < w.partitions {
                Applied::FewerPartitions {
                    has,
                    wants: w.partitions,
                }
            } else {
                let described = described.remove(&i).ok_or_else(|| AdminError::Topic {
                    topic: w.name.clone(),
                    reason: "no configs described".into(),
                })?;
                match drift(&w.name, described, configs)? {
                    drift if drift.is_empty() => Applied::Present,
                    drift => Applied::Differs(drift),
                }
            }
        };
        outcome.push((w.name.clone(), applied));
    }
    Ok(outcome)
}

/// The configs of `topic` that differ from `wanted`, as the brokers described them.
fn drift(
    topic: &str,
    described: Result<ConfigResource, RDKafkaErrorCode>,
    wanted: &[(&'static str, String)],
) -> Result<Vec<Drift>, AdminError> {
    let described = described.map_err(|code| AdminError::Topic {
        topic: topic.to_owned(),
        reason: format!("describing its configs: {code}"),
    })?;
    Ok(wanted
        .iter()
        .filter_map(|(config, wants)| {
            let has = described.get(config).and_then(|e| e.value.clone());
            (has.as_deref() != Some(wants.as_str())).then(|| Drift {
                config,
                has,
                wants: wants.clone(),
            })
        })
        .collect())
}

/// Every topic's partition count, from one metadata request.
fn partitions_of(admin: &AdminClient<KafkaContext>, timeout: Duration) -> Result<HashMap<String, i32>, AdminError> {
    let metadata = admin.inner().fetch_metadata(None, timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .map(|t| {
            (
                t.name().to_owned(),
                i32::try_from(t.partitions().len()).unwrap_or(i32::MAX),
            )
        })
        .collect())
}
