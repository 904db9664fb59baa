//! ws-connect on AWS Lambda. Wiring only: the function is built by `ws_connect::build`, the same
//! builder the local runtime calls.

fn main() -> Result<(), lambda_runtime::Error> {
    relaychat_adapters::lambda::serve_websocket(ws_connect::build)
}
