//! Pushing one frame to every live connection of a user, pruning the stale ones.

use relaychat_schema::UserId;
use tracing::debug;

use crate::Error;
use crate::ports::{ConnectionDirectory, FramePoster, PostOutcome};

/// Posts `frame` to each of the user's connections; returns how many took it. A connection that
/// API Gateway reports gone is removed from the directory.
pub async fn post_to_user(
    directory: &impl ConnectionDirectory,
    poster: &impl FramePoster,
    user: &UserId,
    frame: &[u8],
) -> Result<usize, Error> {
    let mut delivered = 0;
    for connection in directory.connections_of(user).await? {
        match poster.post(&connection, frame).await? {
            PostOutcome::Delivered => delivered += 1,
            PostOutcome::Gone => {
                debug!(%connection, %user, "connection gone; removing it");
                directory.remove_connection(&connection).await?;
            }
        }
    }
    Ok(delivered)
}
