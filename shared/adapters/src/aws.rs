//! Shared AWS SDK set-up: one config per execution environment, explicit timeouts and retries,
//! and the mapping of SDK errors onto retryable / permanent.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use relaychat_core::Error;

/// Loads the AWS configuration from the environment (region, credentials, `AWS_ENDPOINT_URL_*`),
/// with timeouts fit for a request path and a bounded standard retry. Without a region (local
/// runs) it defaults to us-east-1.
pub async fn load_config() -> SdkConfig {
    let region = aws_config::meta::region::RegionProviderChain::default_provider().or_else(Region::new("us-east-1"));
    aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                // Well inside the shortest function timeout (10 s, the WebSocket functions).
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

/// Error codes that mean "not now" rather than "never".
const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "LimitExceededException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
];

/// Maps an SDK error onto the rules' error, keeping it as the source.
pub fn classify<E, R>(operation: &'static str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let retryable = match &err {
        SdkError::ServiceError(service) => service.err().code().is_none_or(|c| RETRYABLE_CODES.contains(&c)),
        SdkError::ConstructionFailure(_) => false,
        // Timeouts, dispatch (connection) failures and unreadable responses.
        _ => true,
    };
    if retryable {
        Error::unavailable(operation, err)
    } else {
        Error::rejected(operation, err)
    }
}
