//! push-notification on AWS Lambda. Wiring only: the function is built by `push_notification::build`, the same
//! builder the local runtime calls.

fn main() -> Result<(), lambda_runtime::Error> {
    relaychat_adapters::lambda::serve_kafka(push_notification::build)
}
