//! kafka-topics on AWS Lambda (the stack's `Custom::KafkaTopics`). Wiring only: tracing, the
//! functions' Kafka settings (a failure to get them is answered as FAILED, not a crash), then one
//! CloudFormation request per invocation.

use kafka_topics::{APPLY_TIMEOUT, KafkaTopics};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use relaychat_admin::CONSUMERS;
use relaychat_schema::Topics;

#[tokio::main]
async fn main() -> Result<(), Error> {
    relaychat_adapters::telemetry::init();
    let settings = relaychat_admin::settings().await.map_err(|e| e.to_string());
    let consumers = CONSUMERS.iter().map(|c| (*c).to_owned()).collect();
    let function = KafkaTopics::new(settings, Topics::from_env(), consumers, APPLY_TIMEOUT)?;
    let function = &function;
    run(service_fn(move |event: LambdaEvent<_>| async move {
        function.handle(&event.payload).await.map_err(Error::from)
    }))
    .await
}
