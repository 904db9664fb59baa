//! Init: process start → the first `GET /runtime/invocation/next`, for each function binary,
//! against a stand-in Lambda Runtime API on a local port (what Lambda measures as the init
//! phase, less the sandbox). Each binary is started `INIT_RUNS` times (default 20) with the
//! environment the template gives it, pointed at ports where nothing answers: init must not wait
//! on the network. Also prints each binary's size.
//!
//! `init DIR` (a directory holding the function binaries, e.g. `target/release`, or each
//! function's `bootstrap` under `target/lambda/<name>/`). `make bench` runs it.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use relaychat_bench::ms;

const FUNCTIONS: [&str; 12] = [
    "ws-connect",
    "ws-disconnect",
    "ws-message",
    "http-authorizer",
    "http-api",
    "persist-message",
    "deliver-message",
    "update-status",
    "relay-typing",
    "update-presence",
    "push-notification",
    "analytics",
];

/// How long one start may take before it counts as hung.
const PATIENCE: Duration = Duration::from_secs(10);

/// `DIR/<name>` or `DIR/<name>/bootstrap` (cargo lambda's layout).
fn binary(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(name).join("bootstrap")]
        .into_iter()
        .find(|p| p.is_file())
}

fn start(binary: &Path, name: &str, runtime_api: &str) -> std::io::Result<Child> {
    Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "init-bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDINITBENCH")
        .env("AWS_SECRET_ACCESS_KEY", "init-bench-secret")
        .env("AWS_SESSION_TOKEN", "init-bench-token")
        .env("RUST_LOG", "info")
        .env("RELAYCHAT_TABLE_PREFIX", "relaychat-")
        // Ports where nothing listens: a function that waits on them at init shows here.
        .env("KAFKA_BROKERS", "127.0.0.1:9")
        .env("WEBSOCKET_CALLBACK_URL", "http://127.0.0.1:9/prod")
        .env("RELAYCHAT_JWT_SECRET", "relaychat-init-bench-secret-of-32-bytes")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// Milliseconds from spawn to the first `next` request, or why there was none.
fn one_start(binary: &Path, name: &str) -> Result<f64, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let api = listener.local_addr().map_err(|e| e.to_string())?.to_string();
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = start(binary, name, &api).map_err(|e| format!("{}: {e}", binary.display()))?;
    let outcome = loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let mut line = String::new();
                let read = stream
                    .set_nonblocking(false)
                    .and_then(|()| stream.set_read_timeout(Some(PATIENCE)))
                    .and_then(|()| BufReader::new(&stream).read_line(&mut line));
                let elapsed = started.elapsed();
                break match read {
                    Ok(_) if line.starts_with("GET /2018-06-01/runtime/invocation/next") => Ok(ms(elapsed)),
                    Ok(_) => Err(format!("first request was {:?}", line.trim_end())),
                    Err(e) => Err(e.to_string()),
                };
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Ok(Some(status)) = child.try_wait() {
                    break Err(format!("exited with {status} before polling"));
                }
                if started.elapsed() > PATIENCE {
                    break Err(format!("no poll within {PATIENCE:?}"));
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => break Err(e.to_string()),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(at).copied().unwrap_or(f64::NAN)
}

fn main() {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: init DIR   (the directory of the function binaries)");
        std::process::exit(2);
    };
    let runs: usize = std::env::var("INIT_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    println!(
        "init: process start -> first Runtime API poll, {runs} starts each ({})",
        dir.display()
    );
    println!(
        "{:>18} {:>10} {:>10} {:>10} {:>10}",
        "function", "MB", "p50 ms", "p90 ms", "max ms"
    );
    let mut failed = false;
    for name in FUNCTIONS {
        let Some(path) = binary(&dir, name) else {
            println!("{name:>18} {:>10}", "missing");
            failed = true;
            continue;
        };
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or_default() as f64 / 1e6;
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            match one_start(&path, name) {
                Ok(t) => times.push(t),
                Err(e) => {
                    println!("{name:>18} {size:>10.1} {e}");
                    failed = true;
                    break;
                }
            }
        }
        if times.len() == runs {
            times.sort_by(f64::total_cmp);
            println!(
                "{name:>18} {size:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                percentile(&times, 0.5),
                percentile(&times, 0.9),
                percentile(&times, 1.0)
            );
        }
    }
    // The floor: tokio and rdkafka alone, built beside this binary (benches/src/bin/kafka-floor.rs).
    let floor = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("kafka-floor")))
        .and_then(|path| std::fs::metadata(path).ok());
    match floor {
        Some(m) => println!(
            "{:>18} {:>10.1}   (tokio + rdkafka alone: the floor of any function that produces)",
            "kafka-floor",
            m.len() as f64 / 1e6
        ),
        None => println!("{:>18} {:>10}", "kafka-floor", "missing"),
    }
    if failed {
        std::process::exit(1);
    }
}
