//! relaychat's business rules. Each rule is a small async function over narrow port traits
//! (`ports`), so it runs the same against DynamoDB and `@connections` in Lambda, the local
//! runtime, and the in-memory fakes of unit tests.

pub mod actions;
pub mod analytics;
pub mod announce;
pub mod batch;
mod bounded;
pub mod delivery;
mod error;
pub mod fanout;
pub mod function;
pub mod limits;
pub mod measure;
pub mod persist;
pub mod ports;
pub mod presence;
pub mod push;
pub mod recent;
pub mod remembered;
pub mod status;
pub mod trace;
pub mod typing;

#[cfg(any(test, feature = "testing"))]
pub mod contract;
#[cfg(any(test, feature = "testing"))]
pub mod memory;

pub use error::{BoxError, Error, chain};
