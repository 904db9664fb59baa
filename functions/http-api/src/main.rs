//! http-api on AWS Lambda. Wiring only: the function is built by `http_api::build`, the same
//! builder the local runtime calls.

fn main() -> Result<(), lambda_http::Error> {
    relaychat_adapters::lambda::serve_http(http_api::build)
}
