//! cargo-lambda against the local servers, as its users work: `make dev` writes the functions'
//! environment, `cargo lambda watch --env-file` runs the functions under its Lambda emulator, and
//! `cargo lambda invoke FN --data-file events/….json` feeds them the sample events. The functions
//! then use this runtime's broker, DynamoDB Local and `@connections` API.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use relaychat_adapters::dynamo::TableNames;
use relaychat_testkit::unique;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::client::{Client, start_runtime_with};

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The first invocation of a function builds it (the dependencies are built already).
const BUILD_AND_INVOKE: Duration = Duration::from_secs(600);

/// cargo-lambda as `make test` installs it (scripts/install-lambda-tools.sh), else from PATH.
fn cargo_lambda() -> PathBuf {
    let cache = std::env::var("RELAYCHAT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/relaychat"));
    let installed = cache.join("lambda-tools/bin/cargo-lambda");
    if installed.exists() {
        installed
    } else {
        PathBuf::from("cargo-lambda")
    }
}

async fn invoke(port: u16, function: &str, event: &str, log: &Path) -> Value {
    let run = Command::new(cargo_lambda())
        .args(["lambda", "invoke", function, "--data-file", event])
        .args(["--invoke-address", "127.0.0.1", "--invoke-port"])
        .arg(port.to_string())
        .current_dir(WORKSPACE)
        .output();
    let out = tokio::time::timeout(BUILD_AND_INVOKE, run)
        .await
        .unwrap_or_else(|_| panic!("{function} did not answer; the watch log:\n{}", tail(log)))
        .expect("cargo lambda invoke runs (make test installs cargo-lambda)");
    assert!(
        out.status.success(),
        "cargo lambda invoke {function}: {}\nthe watch log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        tail(log)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{function} answered {}: {e}", String::from_utf8_lossy(&out.stdout)))
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_lambda_watch_and_invoke_run_the_functions_against_the_local_servers() {
    let dir = std::env::temp_dir().join(unique("cargo-lambda"));
    let env_file = dir.join("lambda.env");
    let tables = TableNames::with_prefix(unique("cl") + "-");
    let (running, _topics) = start_runtime_with(|c| {
        c.lambda_env_file = Some(env_file.clone());
        c.tables = tables.clone();
    })
    .await;
    let env = std::fs::read_to_string(&env_file).expect("the runtime wrote the environment");
    assert!(env.contains(&format!("KAFKA_BROKERS={}\n", running.brokers)), "{env}");
    let mut alice = Client::connect(&running, "alice", "Alice").await;

    // GIVEN cargo lambda watch on the environment the runtime wrote
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let log = dir.join("watch.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let _watch = Command::new(cargo_lambda())
        .args([
            "lambda",
            "watch",
            "--ignore-changes",
            "--invoke-address",
            "127.0.0.1",
            "--env-file",
        ])
        .arg(&env_file)
        .arg("--invoke-port")
        .arg(port.to_string())
        .current_dir(WORKSPACE)
        .stdout(Stdio::from(log_file.try_clone().unwrap()))
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true)
        .spawn()
        .expect("cargo lambda watch starts");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "watch did not listen:\n{}",
            tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // WHEN persist-message is invoked with its sample THEN the message is in DynamoDB Local
    let answer = invoke(port, "persist-message", "events/persist-message.json", &log).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let stored = relaychat_testkit::aws_config().await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&stored)
            .endpoint_url(&running.dynamodb_endpoint)
            .build(),
    );
    let item = client
        .get_item()
        .table_name(tables.messages())
        .key(
            "conversationId",
            aws_sdk_dynamodb::types::AttributeValue::S("01KAXB5ZZZDIRECTALICEBOB00".into()),
        )
        .key(
            "messageId",
            aws_sdk_dynamodb::types::AttributeValue::S("01KAXB6S00AAAAAAAAAAAAAAAA".into()),
        )
        .send()
        .await
        .expect("GetItem")
        .item
        .expect("the sample's first message is stored");
    assert_eq!(
        item.get("content").and_then(|v| v.as_s().ok()).map(String::as_str),
        Some("Hi Bob! Lunch at noon?")
    );

    // WHEN deliver-message is invoked THEN alice, connected to the runtime's gateway, gets bob's
    // and carol's messages through its @connections API
    let answer = invoke(port, "deliver-message", "events/deliver-message.json", &log).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    for id in ["01KAXB6S01BBBBBBBBBBBBBBBB", "01KAXB6S02CCCCCCCCCCCCCCCC"] {
        alice
            .expect("the sample's message, delivered", |f| {
                f["type"] == "message" && f["messageId"] == id
            })
            .await;
    }

    // AND an HTTP API function answers its payload-2.0 sample
    let answer = invoke(port, "http-api", "events/http-api-unread.json", &log).await;
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let body: Value = serde_json::from_str(answer["body"].as_str().expect("a body")).expect("JSON");
    assert!(body.is_object() || body.is_array(), "{body}");

    alice.close().await;
    running.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
