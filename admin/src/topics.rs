//! `topics apply`: the catalogue's topics (`relaychat_schema::topics`) and every consumer's
//! dead-letter topic, created where missing with the catalogue's partitions and retention. An
//! existing topic is left as it is (repartitioning would move keys between partitions and break
//! their order); one with fewer partitions than the catalogue says is reported.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;
use relaychat_adapters::kafka::{KafkaContext, KafkaSettings};
use relaychat_schema::Topics;
use relaychat_schema::topics::{DLQ_PARTITIONS, DLQ_RETENTION, dead_letter_topic};

use crate::AdminError;

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
    wanted.extend(consumers.iter().map(|c| Wanted {
        name: dead_letter_topic(c),
        partitions: DLQ_PARTITIONS,
        retention: DLQ_RETENTION,
    }));
    wanted
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
}

/// Creates what is missing (replication `replication`), and says what it found.
pub async fn apply(
    settings: &KafkaSettings,
    wanted: &[Wanted],
    replication: i32,
) -> Result<Vec<(String, Applied)>, AdminError> {
    let admin: AdminClient<KafkaContext> = settings.client_config().create_with_context(settings.context())?;
    let retention: Vec<String> = wanted.iter().map(|w| w.retention.as_millis().to_string()).collect();
    let new: Vec<NewTopic> = wanted
        .iter()
        .zip(&retention)
        .map(|(w, ms)| {
            NewTopic::new(&w.name, w.partitions, TopicReplication::Fixed(replication)).set("retention.ms", ms)
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut outcome = Vec::with_capacity(wanted.len());
    for (w, result) in wanted.iter().zip(admin.create_topics(&new, &options).await?) {
        match result {
            Ok(_) => outcome.push((w.name.clone(), Applied::Created)),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                let has = partitions_of(&admin, &w.name)?;
                let applied = if has < w.partitions {
                    Applied::FewerPartitions {
                        has,
                        wants: w.partitions,
                    }
                } else {
                    Applied::Present
                };
                outcome.push((w.name.clone(), applied));
            }
            Err((topic, code)) => {
                return Err(AdminError::Topic {
                    topic,
                    reason: code.to_string(),
                });
            }
        }
    }
    Ok(outcome)
}

fn partitions_of(admin: &AdminClient<KafkaContext>, topic: &str) -> Result<i32, AdminError> {
    let metadata = admin.inner().fetch_metadata(Some(topic), Duration::from_secs(10))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| i32::try_from(t.partitions().len()).unwrap_or(i32::MAX)))
}
