//! http-authorizer on AWS Lambda. Wiring only: the function is built by `http_authorizer::build`,
//! the same builder the local runtime calls.

fn main() -> Result<(), lambda_runtime::Error> {
    relaychat_adapters::lambda::serve_authorizer(http_authorizer::build)
}
