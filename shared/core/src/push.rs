//! push-notification: a notification to each of the user's devices, once.

use relaychat_schema::Notification;
use tracing::{debug, info};

use crate::Error;
use crate::ports::{DeviceStore, NotificationLog, PushResult, PushSender};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Sent to this many devices (0: the user has none registered; the history still has it).
    Sent(usize),
    AlreadySent,
}

/// Records the notification (30-day history) and sends it to every device. A token the push
/// service reports unregistered is deleted. A replay after success sends nothing.
pub async fn send_notification<S>(
    store: &S,
    sender: &impl PushSender,
    notification: &Notification,
) -> Result<Pushed, Error>
where
    S: NotificationLog + DeviceStore,
{
    if !store.begin(notification).await? {
        debug!(notification_id = %notification.notification_id, "already sent");
        return Ok(Pushed::AlreadySent);
    }
    let mut sent = 0;
    for device in store.devices_of(&notification.user_id).await? {
        match sender.send(&device, notification).await? {
            PushResult::Sent => sent += 1,
            PushResult::Unregistered => {
                info!(user = %device.user, platform = %device.platform, "device token unregistered; deleting it");
                store.remove_device(&device).await?;
            }
        }
    }
    store.mark_sent(notification, sent).await?;
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
