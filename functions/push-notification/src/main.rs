use aws_lambda_events::event::kafka::KafkaEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use push_notification::{CONSUMER, PushNotification};
use relaychat_adapters::dynamo::{DynamoStore, TableNames};
use relaychat_adapters::fcm::PushService;
use relaychat_adapters::kafka::{KafkaDeadLetters, KafkaPublisher};
use relaychat_adapters::{aws, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = aws::load_config().await;
    let function = PushNotification {
        store: DynamoStore::new(DynamoStore::client(&config), TableNames::from_env()),
        push: PushService::from_env(&config).await?,
        dead_letters: KafkaDeadLetters::new(KafkaPublisher::connect(&config).await?, CONSUMER),
    };
    let function = &function;
    run(service_fn(move |event: LambdaEvent<KafkaEvent>| async move {
        Ok::<_, Error>(function.invoke(&event.payload).await)
    }))
    .await
}
