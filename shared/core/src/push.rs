//! push-notification: a notification to each of the user's devices, once per device.

use relaychat_schema::Notification;
use tracing::{debug, info, warn};

use crate::Error;
use crate::ports::{Begun, DeviceStore, NotificationLog, PushResult, PushSender};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Sent to this many devices by this attempt (0: the user has none; the history still has it).
    Sent(usize),
    AlreadySent,
}

/// Records the notification (30-day history) and sends it to every device, each on its own: a
/// token the push service rejects or no longer knows is deleted; a device whose send failed for
/// good is skipped; a device whose send can be retried makes the whole record retried, and the
/// retry sends only to the devices not reached yet.
pub async fn send_notification<S>(
    store: &S,
    sender: &impl PushSender,
    notification: &Notification,
) -> Result<Pushed, Error>
where
    S: NotificationLog + DeviceStore,
{
    let already_sent_to = match store.begin(notification).await? {
        Begun::AlreadySent => {
            debug!(notification_id = %notification.notification_id, "already sent");
            return Ok(Pushed::AlreadySent);
        }
        Begun::Send { already_sent_to } => already_sent_to,
    };
    let mut sent = 0;
    let mut retry: Option<Error> = None;
    for device in store.devices_of(&notification.user_id).await? {
        if already_sent_to.iter().any(|t| t == device.token.as_str()) {
            continue;
        }
        match sender.send(&device, notification).await {
            Ok(PushResult::Sent) => {
                crate::measure::push(true);
                store.sent_to(notification, &device).await?;
                sent += 1;
            }
            Ok(PushResult::Unregistered) => {
                info!(user = %device.user, platform = %device.platform, "device token unregistered; deleting it");
                store.remove_device(&device).await?;
            }
            Ok(PushResult::TokenRejected(reason)) => {
                info!(user = %device.user, %reason, "device token rejected; deleting it");
                store.remove_device(&device).await?;
            }
            Err(e) if e.is_retryable() => {
                crate::measure::push(false);
                warn!(user = %device.user, error = %e.chain(), "push failed; will retry this device");
                retry.get_or_insert(e);
            }
            Err(e) => {
                crate::measure::push(false);
                warn!(user = %device.user, error = %e.chain(), "push refused for this device; skipping it");
            }
        }
    }
    if let Some(e) = retry {
        return Err(e);
    }
    store.mark_sent(notification, sent + already_sent_to.len()).await?;
    Ok(Pushed::Sent(sent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Memory, sample_message, user};

    #[tokio::test]
    async fn pushes_once_and_prunes_unregistered_tokens() {
        // GIVEN carol with a live and a dead device token
        let mem = Memory::default();
        mem.register_device("carol", "tok-live");
        mem.register_device("carol", "tok-dead");
        mem.unregister_token("tok-dead");
        let n = Notification::for_message(&sample_message("c1", "alice", &["carol"]), &user("carol"), None);
        // WHEN the notification is handled twice
        assert_eq!(send_notification(&mem, &mem, &n).await.unwrap(), Pushed::Sent(1));
        assert_eq!(send_notification(&mem, &mem, &n).await.unwrap(), Pushed::AlreadySent);
        // THEN one push went out, and the dead token is gone
        assert_eq!(mem.pushes(), vec!["tok-live".to_owned()]);
        assert_eq!(mem.device_tokens("carol"), vec!["tok-live".to_owned()]);
    }

    #[tokio::test]
    async fn each_device_is_handled_on_its_own() {
        // GIVEN carol with a rejected token, a device that is busy once, and a good one
        let mem = Memory::default();
        mem.register_device("carol", "tok-rejected");
        mem.register_device("carol", "tok-busy");
        mem.register_device("carol", "tok-good");
        mem.reject_token("tok-rejected");
        mem.busy_token("tok-busy", 1);
        let n = Notification::for_message(&sample_message("c1", "alice", &["carol"]), &user("carol"), None);
        // WHEN the notification is handled: the busy device makes it retried
        assert!(send_notification(&mem, &mem, &n).await.unwrap_err().is_retryable());
        // THEN the good device got it, the rejected token is gone, and the retry reaches only the busy one
        assert_eq!(mem.pushes(), vec!["tok-good".to_owned()]);
        assert_eq!(send_notification(&mem, &mem, &n).await.unwrap(), Pushed::Sent(1));
        assert_eq!(mem.pushes(), vec!["tok-good".to_owned(), "tok-busy".to_owned()]);
        assert_eq!(
            mem.device_tokens("carol"),
            vec!["tok-busy".to_owned(), "tok-good".to_owned()]
        );
        assert_eq!(send_notification(&mem, &mem, &n).await.unwrap(), Pushed::AlreadySent);
    }

    #[tokio::test]
    async fn a_token_belongs_to_the_user_who_registered_it_last() {
        let mem = Memory::default();
        mem.register_device("carol", "shared-phone");
        mem.register_device("dave", "shared-phone");
        assert!(mem.device_tokens("carol").is_empty());
        let n = Notification::for_message(&sample_message("c1", "alice", &["carol"]), &user("carol"), None);
        assert_eq!(send_notification(&mem, &mem, &n).await.unwrap(), Pushed::Sent(0));
        assert!(mem.pushes().is_empty(), "carol's preview never reaches dave's phone");
    }

    #[tokio::test]
    async fn a_failed_send_is_retried_and_then_sent() {
        let mem = Memory::default();
        mem.register_device("carol", "tok");
        let n = Notification::for_message(&sample_message("c1", "alice", &["carol"]), &user("carol"), None);
        mem.fail_pushes(true);
        assert!(send_notification(&mem, &mem, &n).await.unwrap_err().is_retryable());
        mem.fail_pushes(false);
        assert_eq!(send_notification(&mem, &mem, &n).await.unwrap(), Pushed::Sent(1));
    }
}
