//! The size floor of a function: a program that does nothing but produce one record with rdkafka
//! (TLS and SASL configured, as every function's producer is), built with the release profile of
//! the functions. `init` prints its size beside theirs: what librdkafka, vendored OpenSSL, curl
//! and zlib cost before any of relaychat's own code (docs/performance.md, "Size and init").
//! Not meant to be run against a broker; `kafka-floor BROKERS` would produce to topic `floor`.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

#[tokio::main]
async fn main() {
    let brokers = std::env::args().nth(1).unwrap_or_default();
    let producer: FutureProducer = match ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .create()
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kafka-floor: {e}");
            std::process::exit(1);
        }
    };
    let sent = producer
        .send(FutureRecord::to("floor").key("k").payload("v"), Duration::from_secs(1))
        .await;
    println!("produced: {}", sent.is_ok());
}
