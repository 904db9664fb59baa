//! MSK IAM authentication: librdkafka's OAUTHBEARER token refresh, answered with a token signed
//! by the default AWS credential chain.

/// librdkafka client context. With MSK IAM it answers librdkafka's token refresh with a token
/// signed by the default AWS credential chain (the Lambda role).
#[derive(Debug, Clone, Default)]
pub struct KafkaContext {
    pub(super) msk_iam_region: Option<String>,
}

impl rdkafka::ClientContext for KafkaContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        let region = self
            .msk_iam_region
            .clone()
            .ok_or("OAUTHBEARER tokens are only made for AWS_MSK_IAM")?;
        // librdkafka calls this from its own thread; the signer is async: run it on a small
        // runtime of its own, on a thread of its own, so it never nests inside another runtime.
        let signed = std::thread::spawn(
            move || -> Result<(String, i64), Box<dyn std::error::Error + Send + Sync>> {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime
                    .block_on(aws_msk_iam_sasl_signer::generate_auth_token(aws_config::Region::new(
                        region,
                    )))
                    .map_err(Into::into)
            },
        )
        .join()
        .map_err(|_| "the MSK IAM signer thread panicked")?;
        let (token, expires_at_ms) = signed.map_err(|e| -> Box<dyn std::error::Error> { e })?;
        Ok(rdkafka::client::OAuthToken {
            token,
            principal_name: String::new(),
            lifetime_ms: expires_at_ms,
        })
    }
}

/// Consumers (the operator's `relaychat dlq` reads dead-letter topics) authenticate the same way.
impl rdkafka::consumer::ConsumerContext for KafkaContext {}
