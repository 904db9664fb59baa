//! `relaychat-local` — `make dev` runs the whole system; `relaychat-local invoke FN EVENT` runs
//! one function on one event.

use std::path::PathBuf;
use std::process::ExitCode;

use relaychat_adapters::dynamo::{DynamoStore, TableNames};
use relaychat_adapters::kafka::{KafkaPublisher, KafkaSettings};
use relaychat_adapters::{Deps, aws, telemetry};
use relaychat_local::infra;
use relaychat_local::otlp::{self, Otlp};
use relaychat_local::runtime::{self, LocalConfig};
use relaychat_schema::Topics;

#[tokio::main]
async fn main() -> ExitCode {
    let otlp = traces();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [] => dev(otlp.as_ref()).await,
        [cmd, function, event] if cmd == "invoke" => invoke(function, PathBuf::from(event)).await,
        _ => Err("usage: relaychat-local [invoke FUNCTION EVENT_FILE]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relaychat-local: {}", relaychat_core::chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Logging, and the traces over OTLP when an endpoint is configured.
fn traces() -> Option<Otlp> {
    if otlp::configured_endpoint().is_none() {
        telemetry::init();
        return None;
    }
    match otlp::layer(None) {
        Ok((layer, handle)) => {
            telemetry::init_with(Some(Box::new(layer)));
            Some(handle)
        }
        Err(e) => {
            telemetry::init();
            tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "traces are not exported");
            None
        }
    }
}

async fn dev(otlp: Option<&Otlp>) -> Result<(), Box<dyn std::error::Error>> {
    let running = runtime::start(LocalConfig::from_env()).await?;
    println!();
    println!("  relaychat is running");
    println!("  web page     http://{}/", running.http);
    println!("  websocket    ws://{}/local?token=JWT", running.ws);
    println!("  dev token    http://{}/dev/token?user=alice&name=Alice", running.http);
    println!(
        "  HTTP API     http://{}/api  (Authorization: Bearer <dev token>; docs/openapi.yaml)",
        running.http
    );
    println!(
        "  dashboard    http://{}/dashboard.html  (lag, invocations, dead letters: redrive)",
        running.http
    );
    println!("  status/lag   http://{}/dev/status", running.http);
    println!("  kafka        {}", running.brokers);
    println!("  dynamodb     {}", running.dynamodb_endpoint);
    if let Some(env) = &running.lambda_env_file {
        println!(
            "  lambda env   {}  (make watch: cargo lambda watch on it; then cargo lambda invoke FN --data-file events/FILE.json)",
            env.display()
        );
    }
    if let Some(endpoint) = otlp::configured_endpoint() {
        println!("  traces       OTLP/HTTP to {endpoint}");
    }
    println!("  Ctrl-C stops it.");
    println!();
    stop_requested().await?;
    running.stop().await;
    if let Some(otlp) = otlp {
        otlp.flush().await;
    }
    Ok(())
}

/// Ctrl-C, `kill` (SIGTERM) or a closed terminal (SIGHUP): each stops the runtime and the servers
/// it started, rather than leaving the broker and DynamoDB Local running behind it.
async fn stop_requested() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut hangup) = (signal(SignalKind::terminate())?, signal(SignalKind::hangup())?);
    tokio::select! {
        stopped = tokio::signal::ctrl_c() => stopped,
        _ = term.recv() => Ok(()),
        _ = hangup.recv() => Ok(()),
    }
}

async fn invoke(function: &str, event: PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let config = aws::load_config().await;
    // The servers may be fresh: make sure the topics and tables are there (both idempotent).
    let settings = KafkaSettings::from_env()?;
    let topics = Topics::from_env();
    infra::create_topics(&settings, &topics, &[format!("{function}-dlq")]).await?;
    infra::create_tables(&DynamoStore::client(&config), &TableNames::from_env()).await?;
    let ws = relaychat_adapters::optional("RELAYCHAT_WS_PORT").unwrap_or_else(|| "3001".into());
    let deps = Deps {
        store: DynamoStore::new(DynamoStore::client(&config), TableNames::from_env()),
        publisher: KafkaPublisher::from_env()?,
        callback_url: Some(format!("http://127.0.0.1:{ws}/local")),
        jwt_secret: Some(
            relaychat_adapters::optional("RELAYCHAT_JWT_SECRET")
                .unwrap_or_else(|| relaychat_adapters::auth::DEV_SECRET.into()),
        ),
        topics: Topics::from_env(),
        aws: config,
    };
    let response = relaychat_local::invoke::invoke(function, &event, &deps).await?;
    println!("{}", serde_json::to_string_pretty(&response)?);
    Ok(())
}
