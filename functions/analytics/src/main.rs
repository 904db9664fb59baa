use analytics::{Analytics, CONSUMER};
use aws_lambda_events::event::kafka::KafkaEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use relaychat_adapters::dynamo::{DynamoStore, TableNames};
use relaychat_adapters::kafka::{KafkaDeadLetters, KafkaPublisher};
use relaychat_adapters::{aws, telemetry};
use relaychat_schema::Topics;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = aws::load_config().await;
    let function = Analytics {
        store: DynamoStore::new(DynamoStore::client(&config), TableNames::from_env()),
        dead_letters: KafkaDeadLetters::new(KafkaPublisher::connect(&config).await?, CONSUMER),
        topics: Topics::from_env(),
    };
    let function = &function;
    run(service_fn(move |event: LambdaEvent<KafkaEvent>| async move {
        Ok::<_, Error>(function.invoke(&event.payload).await)
    }))
    .await
}
