//! update-presence on AWS Lambda. Wiring only: the function is built by `update_presence::build`,
//! the same builder the local runtime calls.

fn main() -> Result<(), lambda_runtime::Error> {
    relaychat_adapters::lambda::serve_kafka(update_presence::build)
}
