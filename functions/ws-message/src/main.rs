use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use relaychat_adapters::dynamo::{DynamoStore, TableNames};
use relaychat_adapters::kafka::KafkaPublisher;
use relaychat_adapters::{aws, telemetry};
use relaychat_schema::Topics;
use ws_message::WsMessage;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = aws::load_config().await;
    let function = WsMessage {
        store: DynamoStore::new(DynamoStore::client(&config), TableNames::from_env()),
        publisher: KafkaPublisher::connect(&config).await?,
        topics: Topics::from_env(),
    };
    let function = &function;
    run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(function.invoke(&event.payload).await)
        },
    ))
    .await
}
