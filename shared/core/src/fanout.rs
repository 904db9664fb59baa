//! Pushing one frame to every live connection of a user, pruning the stale ones.

use relaychat_schema::{ConnectionId, UserId};
use tracing::debug;

use crate::Error;
use crate::ports::{ConnectionDirectory, FramePoster, PostOutcome};

/// Posts `frame` to each of the user's connections; returns how many took it. A connection that
/// API Gateway reports gone is removed from the directory. When every connection listed was gone
/// (the device reconnected since a remembered lookup: a reload), the user's connections are
/// looked up once more, so the new connection gets the frame.
pub async fn post_to_user(
    directory: &impl ConnectionDirectory,
    poster: &impl FramePoster,
    user: &UserId,
    frame: &[u8],
) -> Result<usize, Error> {
    let listed = directory.connections_of(user).await?;
    let (delivered, gone) = post_each(directory, poster, user, frame, &listed).await?;
    if delivered > 0 || gone == 0 {
        return Ok(delivered);
    }
    let again: Vec<ConnectionId> = directory
        .connections_of(user)
        .await?
        .into_iter()
        .filter(|c| !listed.contains(c))
        .collect();
    Ok(post_each(directory, poster, user, frame, &again).await?.0)
}

/// Posts to these connections; how many took the frame, and how many were gone (and removed).
async fn post_each(
    directory: &impl ConnectionDirectory,
    poster: &impl FramePoster,
    user: &UserId,
    frame: &[u8],
    connections: &[ConnectionId],
) -> Result<(usize, usize), Error> {
    let (mut delivered, mut gone) = (0, 0);
    for connection in connections {
        match poster.post(connection, frame).await? {
            PostOutcome::Delivered => delivered += 1,
            PostOutcome::Gone => {
                debug!(%connection, %user, "connection gone; removing it");
                directory.remove_connection(connection).await?;
                gone += 1;
            }
        }
    }
    Ok((delivered, gone))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::memory::{Memory, user};
    use crate::recent::RecentConnections;

    #[tokio::test]
    async fn a_device_that_reconnected_since_a_remembered_lookup_still_gets_the_frame() {
        // GIVEN bob's connection remembered by the function, then bob reloading his page
        let mem = Memory::default();
        mem.connect("bob", "conn-old");
        let recent = RecentConnections::new(&mem, Duration::from_secs(60));
        assert_eq!(post_to_user(&recent, &mem, &user("bob"), b"{}").await.unwrap(), 1);
        mem.mark_gone("conn-old");
        mem.connect("bob", "conn-new");
        // WHEN a frame goes to bob within the memory's time
        let took = post_to_user(&recent, &mem, &user("bob"), b"{\"n\":2}").await.unwrap();
        // THEN the new connection gets it and the old one is forgotten
        assert_eq!(took, 1);
        assert_eq!(mem.frames_to("conn-new").len(), 1);
        assert_eq!(mem.connections("bob"), vec!["conn-new".to_owned()]);
    }
}
