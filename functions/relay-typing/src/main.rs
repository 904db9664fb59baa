//! relay-typing on AWS Lambda. Wiring only: the function is built by `relay_typing::build`, the same
//! builder the local runtime calls.

fn main() -> Result<(), lambda_runtime::Error> {
    relaychat_adapters::lambda::serve_kafka(relay_typing::build)
}
