//! Dead letters: what a function could not handle, in its `<consumer>-dlq` topic with the original
//! key, value and headers, the reason, the source `topic-partition@offset` and the consumer.
//! Listed, shown, and redriven to the source topic (with a redrive count, refusing loops).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use relaychat_adapters::kafka::{
    DLQ_CONSUMER_HEADER, DLQ_REASON_HEADER, DLQ_SOURCE_HEADER, KafkaContext, KafkaPublisher, KafkaSettings,
};

use crate::AdminError;

/// How many times a record is redriven (each time it came back to a dead-letter topic) before
/// `redrive` refuses: a record a fix did not cure would go round for ever.
pub const MAX_REDRIVES: u32 = 3;
/// The header counting a record's redrives.
pub const REDRIVE_COUNT_HEADER: &str = "x-relaychat-redrive-count";
/// How long reading a dead-letter topic to its end may take.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a record is: `topic-partition@offset` (a dead letter's, or its source's).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordAt {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl fmt::Display for RecordAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}@{}", self.topic, self.partition, self.offset)
    }
}

impl FromStr for RecordAt {
    type Err = AdminError;
    fn from_str(s: &str) -> Result<Self, AdminError> {
        let bad = || AdminError::Usage(format!("{s:?} is not topic-partition@offset"));
        let (left, offset) = s.rsplit_once('@').ok_or_else(bad)?;
        let (topic, partition) = left.rsplit_once('-').ok_or_else(bad)?;
        Ok(Self {
            topic: topic.to_owned(),
            partition: partition.parse().map_err(|_| bad())?,
            offset: offset.parse().map_err(|_| bad())?,
        })
    }
}

/// One dead letter, whole.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub at: RecordAt,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    /// Every header: the record's own and the dead-letter ones.
    pub headers: Vec<(String, Vec<u8>)>,
    /// When it was dead-lettered.
    pub timestamp: Option<DateTime<Utc>>,
}

impl DeadLetter {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn reason(&self) -> Option<String> {
        self.header(DLQ_REASON_HEADER)
    }

    pub fn consumer(&self) -> Option<String> {
        self.header(DLQ_CONSUMER_HEADER)
    }

    /// Where the record was read from when it failed.
    pub fn source(&self) -> Option<RecordAt> {
        self.header(DLQ_SOURCE_HEADER)?.parse().ok()
    }

    /// How many times it has been redriven before.
    pub fn redrives(&self) -> u32 {
        self.header(REDRIVE_COUNT_HEADER)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    pub fn age(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        self.timestamp.map(|t| now - t)
    }

    /// One line: where, from where, how old, how often redriven, why.
    pub fn summary(&self, now: DateTime<Utc>) -> String {
        let age = self
            .age(now)
            .map(|a| format!("{}s", a.num_seconds()))
            .unwrap_or_else(|| "?".into());
        format!(
            "{}  consumer={}  source={}  age={}  redrives={}  reason={}",
            self.at,
            self.consumer().unwrap_or_else(|| "?".into()),
            self.source().map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
            age,
            self.redrives(),
            self.reason().unwrap_or_else(|| "?".into()),
        )
    }

    /// Every field, the value as text (or its length when it is not).
    pub fn describe(&self) -> String {
        let text = |b: &[u8]| match std::str::from_utf8(b) {
            Ok(t) => t.to_owned(),
            Err(_) => format!("<{} bytes, not UTF-8>", b.len()),
        };
        let mut out = format!(
            "dead letter  {}\nconsumer     {}\nsource       {}\nreason       {}\nredrives     {}\ntimestamp    {}\nkey          {}\nheaders\n",
            self.at,
            self.consumer().unwrap_or_default(),
            self.source().map(|s| s.to_string()).unwrap_or_default(),
            self.reason().unwrap_or_default(),
            self.redrives(),
            self.timestamp.map(|t| t.to_rfc3339()).unwrap_or_default(),
            self.key.as_deref().map(text).unwrap_or_default(),
        );
        for (k, v) in &self.headers {
            out.push_str(&format!("  {k}: {}\n", text(v)));
        }
        out.push_str(&format!("value\n{}\n", text(&self.value)));
        out
    }
}

/// Every dead letter in `topic`, read from its beginning to its end (end-of-partition events: a
/// broker's "latest" offset is not trusted).
pub fn read(settings: &KafkaSettings, topic: &str) -> Result<Vec<DeadLetter>, AdminError> {
    let consumer: BaseConsumer<KafkaContext> = settings
        .client_config()
        .set("group.id", format!("relaychat-admin-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "10")
        .create_with_context(settings.context())?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let mut assignment = TopicPartitionList::new();
    for p in &partitions {
        assignment.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut open: HashMap<i32, bool> = partitions.iter().map(|p| (*p, true)).collect();
    let mut letters = Vec::new();
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    while open.values().any(|o| *o) {
        if std::time::Instant::now() > deadline {
            return Err(AdminError::Topic {
                topic: topic.to_owned(),
                reason: "its end was not reached in time".into(),
            });
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.insert(p, false);
            }
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(m)) => letters.push(DeadLetter {
                at: RecordAt {
                    topic: topic.to_owned(),
                    partition: m.partition(),
                    offset: m.offset(),
                },
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().unwrap_or_default().to_vec(),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
                timestamp: m.timestamp().to_millis().and_then(DateTime::from_timestamp_millis),
            }),
        }
    }
    letters.sort_by(|a, b| a.at.cmp(&b.at));
    Ok(letters)
}

/// What redriving a dead letter did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redrive {
    /// Back on its source topic, here.
    Sent(RecordAt),
    /// Not sent, and why (it went round `MAX_REDRIVES` times already, or its source is unknown).
    Refused(String),
}

/// Puts a dead letter back on the topic it was read from: its key, value and own headers, with
/// `x-relaychat-redrive-count` one more (the dead-letter headers stay behind). The consumers are
/// idempotent, so a record redriven twice is still handled once.
pub async fn redrive(publisher: &KafkaPublisher, letter: &DeadLetter) -> Result<Redrive, AdminError> {
    let redrives = letter.redrives();
    if redrives >= MAX_REDRIVES {
        return Ok(Redrive::Refused(format!(
            "redriven {redrives} times already: fix what fails it first (a loop otherwise)"
        )));
    }
    let Some(source) = letter.source() else {
        return Ok(Redrive::Refused("no source topic in its headers".into()));
    };
    let count = (redrives + 1).to_string();
    let mut headers: Vec<(&str, &[u8])> = letter
        .headers
        .iter()
        .filter(|(k, _)| !k.starts_with("x-relaychat-dlq-") && k != REDRIVE_COUNT_HEADER)
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    headers.push((REDRIVE_COUNT_HEADER, count.as_bytes()));
    let (partition, offset) = publisher
        .send(&source.topic, letter.key.as_deref(), &letter.value, &headers)
        .await
        .map_err(|source| AdminError::Redrive {
            letter: letter.at.to_string(),
            source,
        })?;
    Ok(Redrive::Sent(RecordAt {
        topic: source.topic,
        partition,
        offset,
    }))
}

/// Which dead letters a command takes.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// One dead letter.
    pub at: Option<RecordAt>,
    /// Those whose reason contains this.
    pub reason: Option<String>,
}

impl Filter {
    pub fn takes(&self, letter: &DeadLetter) -> bool {
        self.at.as_ref().is_none_or(|at| *at == letter.at)
            && self
                .reason
                .as_ref()
                .is_none_or(|r| letter.reason().is_some_and(|reason| reason.contains(r.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_named_topic_partition_at_offset_even_with_dashes_in_the_topic() {
        let at: RecordAt = "persist-message-dlq-0@17".parse().unwrap();
        assert_eq!(
            (at.topic.as_str(), at.partition, at.offset),
            ("persist-message-dlq", 0, 17)
        );
        assert_eq!(at.to_string(), "persist-message-dlq-0@17");
        assert!("no-offset".parse::<RecordAt>().is_err());
        assert!("topic-x@1".parse::<RecordAt>().is_err());
    }

    #[test]
    fn a_letter_says_why_whence_and_how_often_and_the_filter_picks_by_them() {
        let letter = DeadLetter {
            at: "persist-message-dlq-0@3".parse().unwrap(),
            key: Some(b"c1".to_vec()),
            value: b"{}".to_vec(),
            headers: vec![
                ("traceparent".into(), b"00-abc".to_vec()),
                (DLQ_REASON_HEADER.into(), b"invalid payload: missing field".to_vec()),
                (DLQ_SOURCE_HEADER.into(), b"chat-messages-2@40".to_vec()),
                (DLQ_CONSUMER_HEADER.into(), b"persist-message".to_vec()),
                (REDRIVE_COUNT_HEADER.into(), b"2".to_vec()),
            ],
            timestamp: DateTime::from_timestamp_millis(1_000),
        };
        assert_eq!(letter.source().unwrap().to_string(), "chat-messages-2@40");
        assert_eq!(letter.redrives(), 2);
        assert!(letter.summary(Utc::now()).contains("reason=invalid payload"));
        let by_reason = Filter {
            reason: Some("missing field".into()),
            ..Filter::default()
        };
        let elsewhere = Filter {
            at: Some("persist-message-dlq-0@4".parse().unwrap()),
            ..Filter::default()
        };
        assert!(by_reason.takes(&letter));
        assert!(!elsewhere.takes(&letter));
    }
}
