//! The whole system on one machine: servers, topics and tables, every function of the template
//! behind its event-source mappings and WebSocket routes, and the developer web page.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relaychat_adapters::auth::DEV_SECRET;
use relaychat_adapters::dynamo::{DynamoStore, TableNames};
use relaychat_adapters::kafka::{KafkaPublisher, KafkaSettings};
use relaychat_adapters::{Deps, optional};
use relaychat_schema::kafka::EventSource;
use relaychat_schema::{TopicKind, Topics};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::esm::{Esm, MappingStats, Stats};
use crate::functions::{SharedKafkaFunction, authorizer_function, http_function, kafka_function, websocket_function};
use crate::gateway::{DEFAULT_IDLE_TIMEOUT, Gateway, Route};
use crate::http_api::{HttpGateway, HttpRoute};
use crate::infra::{Infra, InfraConfig, create_tables, create_topics, port_or_free};
use crate::lambda_env::LambdaEnv;
use crate::template::Template;
use crate::web::Web;
use relaychat_connections::Connections;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    #[error(transparent)]
    Infra(#[from] crate::infra::InfraError),
    #[error(transparent)]
    Config(#[from] relaychat_adapters::ConfigError),
    #[error("template.yaml wires {0}, which this runtime does not know")]
    UnknownFunction(String),
    #[error("could not write the environment file for cargo lambda")]
    LambdaEnv(#[source] std::io::Error),
    #[error("could not listen on port {port}")]
    Listen {
        port: u16,
        #[source]
        source: std::io::Error,
    },
}

/// Settings, from the environment (docs/local-runtime.md names them).
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub http_port: u16,
    pub ws_port: u16,
    pub stage: String,
    pub jwt_secret: String,
    pub template: PathBuf,
    pub web_dir: PathBuf,
    pub idle_timeout: Duration,
    pub topics: Topics,
    pub tables: TableNames,
    /// Appended to every consumer group (tests run several runtimes on one broker).
    pub group_suffix: String,
    pub infra: InfraConfig,
    /// Where the environment for `cargo lambda watch --env-file` is written (none: not written).
    pub lambda_env_file: Option<PathBuf>,
}

fn port(name: &str, default: u16) -> u16 {
    optional(name).and_then(|p| p.parse().ok()).unwrap_or(default)
}

impl LocalConfig {
    pub fn from_env() -> Self {
        let cache = optional("RELAYCHAT_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(optional("HOME").unwrap_or_else(|| ".".into())).join(".cache/relaychat"));
        Self {
            http_port: port("RELAYCHAT_HTTP_PORT", 3000),
            ws_port: port("RELAYCHAT_WS_PORT", 3001),
            stage: optional("RELAYCHAT_STAGE").unwrap_or_else(|| "local".into()),
            jwt_secret: optional("RELAYCHAT_JWT_SECRET").unwrap_or_else(|| DEV_SECRET.into()),
            template: optional("RELAYCHAT_TEMPLATE")
                .map(PathBuf::from)
                .unwrap_or_else(|| "template.yaml".into()),
            web_dir: optional("RELAYCHAT_WEB_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| "web".into()),
            idle_timeout: optional("RELAYCHAT_IDLE_TIMEOUT_SECS")
                .and_then(|s| s.parse().ok())
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_IDLE_TIMEOUT),
            topics: Topics::from_env(),
            tables: TableNames::from_env(),
            group_suffix: optional("RELAYCHAT_GROUP_SUFFIX").unwrap_or_default(),
            lambda_env_file: Some(
                optional("RELAYCHAT_LAMBDA_ENV_FILE")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| ".local/lambda.env".into()),
            ),
            infra: InfraConfig {
                data_dir: optional("RELAYCHAT_DATA_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| ".local/dynamodb".into()),
                in_memory: optional("RELAYCHAT_IN_MEMORY").is_some_and(|v| v == "1" || v == "true"),
                kafka_port: port("RELAYCHAT_KAFKA_PORT", 19092),
                dynamodb_port: port("RELAYCHAT_DYNAMODB_PORT", 18000),
                kafka_brokers: optional("KAFKA_BROKERS"),
                dynamodb_endpoint: optional("DYNAMODB_ENDPOINT"),
                cache,
            },
        }
    }
}

/// The running system.
pub struct Running {
    pub http: SocketAddr,
    pub ws: SocketAddr,
    pub brokers: String,
    pub dynamodb_endpoint: String,
    pub stats: Stats,
    /// The gateway's live sockets (what `@connections` reaches).
    pub connections: Connections,
    /// The environment file for `cargo lambda watch`, if written.
    pub lambda_env_file: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    mappings: Vec<JoinHandle<()>>,
    servers: Vec<JoinHandle<()>>,
    publisher: KafkaPublisher,
    infra: Infra,
}

/// A template topic name under the names in force (`KAFKA_TOPIC_*` may rename catalogue topics).
fn renamed(topic: &str, topics: &Topics) -> String {
    TopicKind::ALL
        .into_iter()
        .find(|k| k.spec().default_name == topic)
        .map(|k| topics.name(k).to_owned())
        .unwrap_or_else(|| topic.to_owned())
}

pub async fn start(config: LocalConfig) -> Result<Running, RuntimeError> {
    let template = Template::load(&config.template)?;
    let infra = Infra::start(&config.infra).await?;
    let settings = KafkaSettings::plaintext(&infra.brokers);
    // Each consumer's own dead-letter topic, and where its mapping sends what it gives up on.
    let mut dead_letter_topics: Vec<String> = template
        .mappings
        .iter()
        .flat_map(|m| std::iter::once(format!("{}-dlq", m.function)).chain(m.on_failure_topic.clone()))
        .collect();
    dead_letter_topics.sort();
    dead_letter_topics.dedup();
    create_topics(&settings, &config.topics, &dead_letter_topics).await?;

    let aws = relaychat_adapters::aws::load_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&aws)
            .endpoint_url(&infra.dynamodb_endpoint)
            .build(),
    );
    create_tables(&dynamodb, &config.tables).await?;

    let ws_port = port_or_free(config.ws_port)?;
    let http_port = port_or_free(config.http_port)?;
    let publisher = KafkaPublisher::new(&settings)?;
    let deps = Deps {
        store: DynamoStore::new(dynamodb, config.tables.clone()),
        publisher: publisher.clone(),
        callback_url: Some(format!("http://127.0.0.1:{ws_port}/{}", config.stage)),
        jwt_secret: Some(config.jwt_secret.clone()),
        topics: config.topics.clone(),
        aws,
    };

    // Event-source mappings.
    let (shutdown, watch_shutdown) = watch::channel(false);
    let stats: Stats = Arc::new(Mutex::new(Vec::new()));
    let mut functions: BTreeMap<String, SharedKafkaFunction> = BTreeMap::new();
    let mut mappings = Vec::new();
    for (index, mut mapping) in template.mappings.into_iter().enumerate() {
        mapping.topics = mapping.topics.iter().map(|t| renamed(t, &config.topics)).collect();
        mapping.consumer_group.push_str(&config.group_suffix);
        let function = match functions.get(&mapping.function) {
            Some(f) => f.clone(),
            None => {
                let built = kafka_function(&mapping.function, &deps)
                    .await?
                    .ok_or_else(|| RuntimeError::UnknownFunction(mapping.function.clone()))?;
                functions.insert(mapping.function.clone(), built.clone());
                built
            }
        };
        if let Ok(mut s) = stats.lock() {
            s.push(MappingStats {
                function: mapping.function.clone(),
                consumer_group: mapping.consumer_group.clone(),
                topics: mapping.topics.clone(),
                ..MappingStats::default()
            });
        }
        let esm = Esm {
            mapping,
            function,
            settings: settings.clone(),
            dead_letters: publisher.clone(),
            source: EventSource {
                bootstrap_servers: settings.brokers.clone(),
                ..EventSource::default()
            },
            stats: stats.clone(),
            index,
            produced: publisher.produced(),
        };
        let rx = watch_shutdown.clone();
        mappings.push(tokio::spawn(async move {
            let function = esm.mapping.function.clone();
            if let Err(e) = esm.run(rx).await {
                error!(%function, error = %e, "event source mapping failed");
            }
        }));
    }

    // The WebSocket API.
    let connections = Connections::default();
    let routes = route_functions(&template.websocket.routes, &template.timeouts, |name| {
        let deps = &deps;
        async move { websocket_function(&name, deps).await }
    })
    .await?
    .into_iter()
    .map(|(route, (function, timeout))| (route, Route { function, timeout }))
    .collect();
    let gateway = Gateway {
        stage: config.stage.clone(),
        api_id: "local".into(),
        domain: format!("127.0.0.1:{ws_port}"),
        routes,
        route_selection: template.websocket.route_selection.clone(),
        connections: connections.clone(),
        idle_timeout: config.idle_timeout,
    };
    let ws = serve(ws_port, gateway.router()).await?;
    let web = Web {
        dir: config.web_dir.clone(),
        ws_url: format!("ws://127.0.0.1:{ws_port}/{}", config.stage),
        jwt_secret: config.jwt_secret.clone(),
        stats: stats.clone(),
        kafka: settings.clone(),
        dead_letter_topics: dead_letter_topics.clone(),
        publisher: publisher.clone(),
    };
    // The HTTP API, under /api on the same port.
    let http_routes = route_functions(&template.http.routes, &template.timeouts, |name| {
        let deps = &deps;
        async move { http_function(&name, deps).await }
    })
    .await?
    .into_iter()
    .map(|(key, (function, timeout))| (key, HttpRoute { function, timeout }))
    .collect();
    let authorizer = match &template.http.authorizer {
        Some(name) => Some(
            authorizer_function(name, &deps)
                .await?
                .ok_or_else(|| RuntimeError::UnknownFunction(name.clone()))?,
        ),
        None => None,
    };
    let http_api = HttpGateway::new(
        "local".into(),
        format!("127.0.0.1:{http_port}"),
        http_routes,
        authorizer,
        Duration::from_secs(template.http.authorizer_ttl_secs),
    );
    let http = serve(http_port, web.router().merge(http_api.router())).await?;
    info!(web = %format!("http://{}/", http.0), websocket = %format!("ws://{}/{}", ws.0, config.stage), "relaychat is running");
    if let Some(path) = &config.lambda_env_file {
        let callback_url = format!("http://127.0.0.1:{ws_port}/{}", config.stage);
        let env = LambdaEnv {
            brokers: &infra.brokers,
            dynamodb_endpoint: &infra.dynamodb_endpoint,
            callback_url: &callback_url,
            jwt_secret: &config.jwt_secret,
            topics: &config.topics,
            tables: &config.tables,
        };
        env.write(path).map_err(RuntimeError::LambdaEnv)?;
    }
    Ok(Running {
        http: http.0,
        ws: ws.0,
        brokers: infra.brokers.clone(),
        dynamodb_endpoint: infra.dynamodb_endpoint.clone(),
        stats,
        connections,
        lambda_env_file: config.lambda_env_file.clone(),
        shutdown,
        mappings,
        servers: vec![ws.1, http.1],
        publisher,
        infra,
    })
}

/// Each route's function (built once, however many routes it serves) with its template `Timeout`
/// (3 s, Lambda's default, when the template sets none).
async fn route_functions<F: Clone, Built>(
    routes: &BTreeMap<String, String>,
    timeouts: &BTreeMap<String, u64>,
    build: impl Fn(String) -> Built,
) -> Result<BTreeMap<String, (F, Duration)>, RuntimeError>
where
    Built: Future<Output = Result<Option<F>, relaychat_adapters::ConfigError>>,
{
    let mut built: BTreeMap<&String, F> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (route, function) in routes {
        let f = match built.get(function) {
            Some(f) => f.clone(),
            None => {
                let f = build(function.clone())
                    .await?
                    .ok_or_else(|| RuntimeError::UnknownFunction(function.clone()))?;
                built.insert(function, f.clone());
                f
            }
        };
        let timeout = Duration::from_secs(timeouts.get(function).copied().unwrap_or(3));
        out.insert(route.clone(), (f, timeout));
    }
    Ok(out)
}

async fn serve(port: u16, router: axum::Router) -> Result<(SocketAddr, JoinHandle<()>), RuntimeError> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| RuntimeError::Listen { port, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| RuntimeError::Listen { port, source })?;
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            error!(error = %e, "server stopped");
        }
    });
    Ok((addr, task))
}

impl Running {
    /// Stops cleanly: mappings finish their batch and commit, the producer flushes, servers stop.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for m in self.mappings {
            let _ = tokio::time::timeout(Duration::from_secs(15), m).await;
        }
        if let Err(e) = self.publisher.flush(Duration::from_secs(5)) {
            error!(error = %e.chain(), "producer flush failed");
        }
        for s in self.servers {
            s.abort();
        }
        self.infra.stop().await;
        info!("relaychat stopped");
    }
}
