//! deliver-message on AWS Lambda. Wiring only: the function is built by `deliver_message::build`, the same
//! builder the local runtime calls.

fn main() -> Result<(), lambda_runtime::Error> {
    relaychat_adapters::lambda::serve_kafka(deliver_message::build)
}
