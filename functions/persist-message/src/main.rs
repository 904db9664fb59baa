use aws_lambda_events::event::kafka::KafkaEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use persist_message::{CONSUMER, PersistMessage};
use relaychat_adapters::dynamo::{DynamoStore, TableNames};
use relaychat_adapters::kafka::{KafkaDeadLetters, KafkaPublisher};
use relaychat_adapters::{aws, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = aws::load_config().await;
    let store = DynamoStore::new(DynamoStore::client(&config), TableNames::from_env());
    let dead_letters = KafkaDeadLetters::new(KafkaPublisher::connect(&config).await?, CONSUMER);
    let function = PersistMessage::new(store, dead_letters);
    let function = &function;
    run(service_fn(move |event: LambdaEvent<KafkaEvent>| async move {
        Ok::<_, Error>(function.invoke(&event.payload).await)
    }))
    .await
}
