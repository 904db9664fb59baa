//! Batch decoding of chat-message MSK events, three ways, interleaved in rounds:
//! - relaychat: the bytes read straight into partitions (`MskEvent`), each record parsed as a
//!   `ChatMessage` (every limit checked);
//! - plain: what a user writes by hand: `aws_lambda_events`' `KafkaEvent`, base64, serde into a
//!   struct of `String`s;
//! - floor: a serde `IgnoredAny` scan of the same bytes (reading them, nothing more).
//!
//! `cargo run --release -p relaychat-bench --bin decode` (`make bench`).

use aws_lambda_events::event::kafka::KafkaEvent;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use relaychat_bench::{chat_event_bytes, interleaved, ms};
use relaychat_schema::ChatMessage;
use relaychat_schema::MskEvent;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// The hand-written path's message: the same fields, no limits.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlainMessage {
    schema_version: u32,
    message_id: String,
    conversation_id: String,
    sender_id: String,
    sender_name: String,
    content: String,
    client_message_id: Option<String>,
    sent_at: String,
    recipients: Vec<String>,
}

fn relaychat(bytes: &[u8]) -> usize {
    let Ok(event) = MskEvent::from_slice(bytes) else {
        return 0;
    };
    event
        .partitions
        .iter()
        .flat_map(|p| &p.records)
        .filter(|r| r.as_ref().is_ok_and(|r| r.parse::<ChatMessage>().is_ok()))
        .count()
}

fn plain(bytes: &[u8]) -> usize {
    let Ok(event) = serde_json::from_slice::<KafkaEvent>(bytes) else {
        return 0;
    };
    event
        .records
        .values()
        .flatten()
        .filter_map(|r| STANDARD.decode(r.value.as_deref()?).ok())
        .filter(|v| serde_json::from_slice::<PlainMessage>(v).is_ok())
        .count()
}

fn floor(bytes: &[u8]) -> usize {
    serde_json::from_slice::<IgnoredAny>(bytes).map_or(0, |_| 1)
}

/// A way to decode an event's bytes; how many records it read.
type Decoder = fn(&[u8]) -> usize;

/// The event shapes: name, records, content characters.
const SHAPES: [(&str, usize, usize); 5] = [
    ("100", 100, 300),
    ("1000", 1_000, 300),
    ("6mb", 4_557, 700),
    ("10000", 10_000, 300),
    ("10000-large", 10_000, 700),
];

/// `--write-events DIR`: the events as files, for the peers (`scripts/bench.sh`).
/// `--time FILE ITERATIONS`: times each of the three paths on FILE, printing one JSON line each
/// with every iteration's milliseconds (the peers print the same).
fn tool_mode(args: &[String]) -> bool {
    match args {
        [flag, dir] if flag == "--write-events" => {
            let dir = std::path::Path::new(dir);
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            for (name, records, content) in SHAPES {
                let path = dir.join(format!("{name}.json"));
                std::fs::write(&path, chat_event_bytes(records, 3, content))
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                println!("{} {records}", path.display());
            }
            true
        }
        [flag, file, iterations] if flag == "--time" => {
            let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
            let iterations: usize = iterations.parse().unwrap_or(5);
            let records = relaychat(&bytes);
            assert_eq!(plain(&bytes), records, "both paths decode every record");
            let paths: [(&str, Decoder); 3] = [("relaychat", relaychat), ("rust-plain", plain), ("floor", floor)];
            for (name, run) in paths {
                let times: Vec<f64> = (0..iterations)
                    .map(|_| {
                        let started = std::time::Instant::now();
                        std::hint::black_box(run(&bytes));
                        ms(started.elapsed())
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"impl": name, "file": file, "records": records, "ms": times})
                );
            }
            true
        }
        _ => false,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if tool_mode(&args) {
        return;
    }
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    println!(
        "decode: chat-message MSK events, 3 partitions, a traceparent header each; median of {rounds} interleaved rounds"
    );
    println!(
        "{:>28} {:>9} {:>12} {:>10} {:>10} {:>10} {:>12} {:>12} {:>14}",
        "event", "records", "MB", "relaychat", "plain", "floor", "plain/rc", "rc/floor", "rc µs/record"
    );
    for (name, records, content) in SHAPES {
        let bytes = chat_event_bytes(records, 3, content);
        assert_eq!(relaychat(&bytes), records, "relaychat decodes every record");
        assert_eq!(plain(&bytes), records, "the plain path decodes every record");
        let times = interleaved(
            rounds,
            &mut [
                ("relaychat", &mut || relaychat(&bytes)),
                ("plain", &mut || plain(&bytes)),
                ("floor", &mut || floor(&bytes)),
            ],
        );
        let (rc, pl, fl) = (ms(times[0]), ms(times[1]), ms(times[2]));
        println!(
            "{name:>28} {records:>9} {:>12.2} {rc:>8.2}ms {pl:>8.2}ms {fl:>8.2}ms {:>11.2}x {:>11.2}x {:>14.2}",
            bytes.len() as f64 / 1e6,
            pl / rc,
            rc / fl,
            rc * 1000.0 / records as f64
        );
    }
}
