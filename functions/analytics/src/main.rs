//! analytics on AWS Lambda. Wiring only: the function is built by `analytics::build`, the same
//! builder the local runtime calls.

fn main() -> Result<(), lambda_runtime::Error> {
    relaychat_adapters::lambda::serve_kafka(analytics::build)
}
