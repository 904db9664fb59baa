//! `relaychat`: the operator's command. Wiring only: configuration from the environment, then the
//! subcommand (see `relaychat help`).

use std::time::Duration;

use relaychat_adapters::kafka::KafkaPublisher;
use relaychat_admin::dlq::{self, Filter, Redrive};
use relaychat_admin::topics::{self, Applied};
use relaychat_admin::{AdminError, CONSUMERS, settings};
use relaychat_schema::Topics;
use relaychat_schema::topics::dead_letter_topic;

const HELP: &str = "relaychat: operate a relaychat deployment (Kafka settings from the environment, as the functions: KAFKA_BROKERS, MSK_CLUSTER_ARN, KAFKA_SASL_*, KAFKA_SSL_ENABLED)

  relaychat dlq list [--consumer NAME]                  every dead letter: where, source, age, redrives, reason
  relaychat dlq show TOPIC-PARTITION@OFFSET             one dead letter whole
  relaychat dlq redrive TOPIC-PARTITION@OFFSET          back to its source topic
  relaychat dlq redrive --all [--consumer NAME] [--reason TEXT]
  relaychat topics apply [--replication N|default]      create missing topics (replication 3 unless given;
                                                        `default`: the brokers', as on MSK Serverless)
";

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relaychat: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relaychat: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The value after `flag`, if given.
fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

async fn run(args: &[String]) -> Result<(), AdminError> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["dlq", "list", ..] => {
            let settings = settings().await?;
            let now = chrono::Utc::now();
            for topic in dead_letter_topics(args) {
                for letter in dlq::read(&settings, &topic)? {
                    println!("{}", letter.summary(now));
                }
            }
            Ok(())
        }
        ["dlq", "show", at, ..] => {
            let at: dlq::RecordAt = at.parse()?;
            let settings = settings().await?;
            let letter = dlq::read(&settings, &at.topic)?
                .into_iter()
                .find(|l| l.at == at)
                .ok_or_else(|| AdminError::Usage(format!("no dead letter at {at}")))?;
            print!("{}", letter.describe());
            Ok(())
        }
        ["dlq", "redrive", rest @ ..] => {
            let filter = match rest.first() {
                Some(at) if !at.starts_with("--") => Filter {
                    at: Some(at.parse()?),
                    reason: None,
                },
                _ if rest.contains(&"--all") => Filter {
                    at: None,
                    reason: flag(args, "--reason").map(str::to_owned),
                },
                _ => return Err(AdminError::Usage(HELP.into())),
            };
            let settings = settings().await?;
            let publisher = KafkaPublisher::new(&settings)?;
            let topics = match &filter.at {
                Some(at) => vec![at.topic.clone()],
                None => dead_letter_topics(args),
            };
            let (mut sent, mut refused) = (0, 0);
            for topic in topics {
                for letter in dlq::read(&settings, &topic)?.iter().filter(|l| filter.takes(l)) {
                    match dlq::redrive(&publisher, letter).await? {
                        Redrive::Sent(to) => {
                            sent += 1;
                            println!("{} -> {to}", letter.at);
                        }
                        Redrive::Refused(why) => {
                            refused += 1;
                            println!("{} refused: {why}", letter.at);
                        }
                    }
                }
            }
            println!("redriven {sent}, refused {refused}");
            Ok(())
        }
        ["topics", "apply", ..] => {
            let replication = match flag(args, "--replication") {
                Some("default") => topics::BROKER_DEFAULT_REPLICATION,
                Some(n) => n
                    .parse()
                    .map_err(|_| AdminError::Usage("--replication takes a number or `default`".into()))?,
                None => 3,
            };
            let settings = settings().await?;
            let wanted = topics::catalogue(&Topics::from_env(), &CONSUMERS);
            for (topic, applied) in topics::apply(&settings, &wanted, replication, Duration::from_secs(30)).await? {
                match applied {
                    Applied::Created => println!("{topic}: created"),
                    Applied::Present => println!("{topic}: present"),
                    Applied::Differs(drift) => {
                        let drift: Vec<String> = drift.iter().map(ToString::to_string).collect();
                        println!("{topic}: differs, left alone: {}", drift.join("; "))
                    }
                    Applied::FewerPartitions { has, wants } => {
                        println!(
                            "{topic}: has {has} partitions, the catalogue {wants}: left alone (repartitioning moves keys)"
                        )
                    }
                }
            }
            Ok(())
        }
        _ => {
            print!("{HELP}");
            Ok(())
        }
    }
}

/// The dead-letter topics a command reads: one consumer's, or every consumer's.
fn dead_letter_topics(args: &[String]) -> Vec<String> {
    match flag(args, "--consumer") {
        Some(consumer) => vec![dead_letter_topic(consumer)],
        None => CONSUMERS.iter().map(|c| dead_letter_topic(c)).collect(),
    }
}
