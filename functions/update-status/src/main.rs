use aws_lambda_events::event::kafka::KafkaEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use relaychat_adapters::connections_api::ConnectionsApi;
use relaychat_adapters::dynamo::{DynamoStore, TableNames};
use relaychat_adapters::kafka::{KafkaDeadLetters, KafkaPublisher};
use relaychat_adapters::{aws, telemetry};
use relaychat_schema::Topics;
use update_status::{CONSUMER, UpdateStatus};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = aws::load_config().await;
    let publisher = KafkaPublisher::connect(&config).await?;
    let function = UpdateStatus {
        store: DynamoStore::new(DynamoStore::client(&config), TableNames::from_env()),
        pusher: ConnectionsApi::from_env(&config)?,
        publisher: publisher.clone(),
        dead_letters: KafkaDeadLetters::new(publisher, CONSUMER),
        topics: Topics::from_env(),
    };
    let function = &function;
    run(service_fn(move |event: LambdaEvent<KafkaEvent>| async move {
        Ok::<_, Error>(function.invoke(&event.payload).await)
    }))
    .await
}
