//! ws-message: what each client action does. The sender is always the connection's user; every
//! refusal is a `Refusal` with a stable code, turned into an `error` frame by the function.

use chrono::{DateTime, Utc};
use relaychat_schema::events::{MAX_MEMBERS, MAX_SMALL_MEMBERS};
use relaychat_schema::protocol::{
    Command, ConversationSummary, ErrorCode, MAX_SUMMARY_MEMBERS, MessageView, REPLY_ITEMS_BUDGET, Refusal, Reply,
    UnreadCount, fitting,
};
use relaychat_schema::{
    AnalyticsEvent, AnalyticsKind, Change, ChatMessage, ClientMessageId, ConnectionId, ConversationId, DeliveryStatus,
    MessageChange, MessageContent, MessageId, MessageStatusUpdate, SCHEMA_VERSION, Topics, TypingIndicator, UserId,
};
use tracing::{error, warn};

use crate::Error;
use crate::limits::{Budget, Limited};
use crate::ports::{
    AnalyticsStore, ConnectionDirectory, ConnectionRegistry, Conversation, ConversationStore, Device, DeviceStore,
    Identity, MAX_RECEIPT_LOOKUPS, PresenceStore, PublishEvent, Publisher, SendClaim,
};

/// Where an action came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A WebSocket connection.
    Socket(ConnectionId),
    /// The HTTP API (no connection: budgets are the user's).
    Http,
}

/// Where an action came from, and its verified user.
#[derive(Debug, Clone)]
pub struct Sender {
    pub origin: Origin,
    pub identity: Identity,
}

impl Sender {
    pub fn socket(connection: ConnectionId, identity: Identity) -> Self {
        Self {
            origin: Origin::Socket(connection),
            identity,
        }
    }

    pub fn http(identity: Identity) -> Self {
        Self {
            origin: Origin::Http,
            identity,
        }
    }

    /// Whose budget the sender's actions spend.
    pub fn budget(&self) -> Budget<'_> {
        match &self.origin {
            Origin::Socket(connection) => Budget::Connection(connection),
            Origin::Http => Budget::User(&self.identity.user),
        }
    }
}

/// What a deployment may set about the actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// How long after sending a message its sender may edit it (`EDIT_WINDOW_MS`).
    pub edit_window: chrono::Duration,
}

/// The edit window when none is set: 15 minutes, as the common messengers allow.
pub const DEFAULT_EDIT_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

impl Default for Rules {
    fn default() -> Self {
        Self {
            edit_window: chrono::Duration::from_std(DEFAULT_EDIT_WINDOW).unwrap_or_default(),
        }
    }
}

/// How a failed dependency looks to the client: retryable → `unavailable`, anything else →
/// `internal` (logged with its chain).
pub fn refusal_for(e: &Error) -> Refusal {
    if e.is_retryable() {
        warn!(error = %e.chain(), "dependency unavailable");
        Refusal::new(ErrorCode::Unavailable, "the service is busy; try again")
    } else {
        error!(error = %e.chain(), "action failed");
        Refusal::new(ErrorCode::Internal, "the server could not do this")
    }
}

/// Performs one action; `Ok(None)` for actions with no reply (typing, markRead).
pub async fn perform<S, P>(
    store: &S,
    publisher: &P,
    topics: &Topics,
    rules: &Rules,
    sender: &Sender,
    command: Command,
    now: DateTime<Utc>,
) -> Result<Option<Reply>, Refusal>
where
    S: ConversationStore + ConnectionRegistry + DeviceStore + ConnectionDirectory + PresenceStore + AnalyticsStore,
    P: Publisher,
{
    let user = &sender.identity.user;
    match command {
        Command::CreateConversation {
            members,
            title,
            client_request_id,
        } => {
            let mut all = vec![user.clone()];
            for m in members {
                if !all.contains(&m) {
                    all.push(m);
                }
            }
            if all.len() < 2 || all.len() > MAX_SMALL_MEMBERS {
                return Err(Refusal::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "members: a conversation starts with 2 to {MAX_SMALL_MEMBERS} members, you included (addMembers grows it)"
                    ),
                ));
            }
            within_budget(store, sender, Limited::CreateConversation, now).await?;
            let conversation = Conversation {
                id: ConversationId::parse(MessageId::new().to_string())?,
                title,
                members: all,
                created_by: user.clone(),
                created_at: now,
                large: None,
            };
            let stored = store
                .create_conversation(&conversation, client_request_id.as_ref())
                .await
                .map_err(|e| refusal_for(&e))?;
            if stored.id == conversation.id {
                record(
                    publisher,
                    topics,
                    sender,
                    AnalyticsKind::ConversationCreated,
                    Some(&stored.id),
                    now,
                );
            }
            Ok(Some(conversation_reply(stored)))
        }
        Command::ListConversations { limit, after } => {
            let all = store.conversations_of(user).await.map_err(|e| refusal_for(&e))?;
            let (conversations, next_cursor) = conversation_page(all, limit, after.as_deref());
            Ok(Some(Reply::Conversations {
                conversations,
                next_cursor,
            }))
        }
        Command::SendMessage {
            conversation_id,
            content,
            client_message_id,
        } => {
            let conversation = member_of(store, sender, &conversation_id)
                .await
                .map_err(|r| r.with_client_message_id(client_message_id.clone()))?;
            within_budget(store, sender, Limited::SendMessage, now)
                .await
                .map_err(|r| r.with_client_message_id(client_message_id.clone()))?;
            let (message_id, sent_at) =
                message_identity(store, sender, &conversation_id, &content, &client_message_id, now)
                    .await
                    .map_err(|r| r.with_client_message_id(client_message_id.clone()))?;
            let message = ChatMessage {
                schema_version: SCHEMA_VERSION,
                message_id,
                conversation_id,
                sender_id: user.clone(),
                sender_name: sender.identity.name.clone(),
                content,
                client_message_id: client_message_id.clone(),
                sent_at,
                large_group: conversation.is_large(),
                recipients: conversation.members,
                fanout_after: None,
            };
            // The ack promises the message is durable: only after the broker confirmed the write.
            publisher
                .publish_event(topics, &message)
                .await
                .map_err(|e| refusal_for(&e).with_client_message_id(client_message_id.clone()))?;
            Ok(Some(Reply::Ack {
                client_message_id,
                message_id: message.message_id,
                conversation_id: message.conversation_id,
                status: DeliveryStatus::Sent,
                sent_at: message.sent_at,
            }))
        }
        Command::EditMessage {
            conversation_id,
            message_id,
            content,
        } => {
            let (conversation, stored) = own_message(store, sender, &conversation_id, message_id, now).await?;
            if stored.deleted_at.is_some() {
                return Err(Refusal::new(ErrorCode::Conflict, "the message was deleted"));
            }
            if now - stored.sent_at > rules.edit_window {
                return Err(Refusal::new(
                    ErrorCode::Forbidden,
                    format!(
                        "a message can be edited for {} minutes after it was sent",
                        rules.edit_window.num_minutes()
                    ),
                ));
            }
            let edit = Change::Edited {
                content: content.clone(),
            };
            publish_change(publisher, topics, sender, conversation, message_id, edit, now).await?;
            Ok(Some(Reply::MessageEdited {
                conversation_id,
                message_id,
                content,
                edited_at: now,
            }))
        }
        Command::DeleteMessage {
            conversation_id,
            message_id,
        } => {
            let (conversation, stored) = own_message(store, sender, &conversation_id, message_id, now).await?;
            // Deleting again changes nothing: the first deletion stands.
            let deleted_at = match stored.deleted_at {
                Some(first) => first,
                None => {
                    publish_change(
                        publisher,
                        topics,
                        sender,
                        conversation,
                        message_id,
                        Change::Deleted,
                        now,
                    )
                    .await?;
                    now
                }
            };
            Ok(Some(Reply::MessageDeleted {
                conversation_id,
                message_id,
                deleted_at,
            }))
        }
        Command::Typing {
            conversation_id,
            is_typing,
        } => {
            let conversation = member_of(store, sender, &conversation_id).await?;
            within_budget(store, sender, Limited::Typing, now).await?;
            // Typing is not relayed in a large group: thousands of frames for every keystroke.
            if conversation.is_large() {
                return Ok(None);
            }
            let indicator = TypingIndicator {
                schema_version: SCHEMA_VERSION,
                conversation_id,
                user_id: user.clone(),
                is_typing,
                at: now,
                recipients: conversation.members,
            };
            publisher
                .publish_event(topics, &indicator)
                .await
                .map_err(|e| refusal_for(&e))?;
            Ok(None)
        }
        Command::MarkRead {
            conversation_id,
            message_id,
        } => {
            let conversation = member_of(store, sender, &conversation_id).await?;
            let update = MessageStatusUpdate {
                schema_version: SCHEMA_VERSION,
                message_id,
                conversation_id: conversation_id.clone(),
                user_id: user.clone(),
                sender_id: None,
                status: DeliveryStatus::Read,
                at: now,
                large_group: conversation.is_large(),
            };
            publisher
                .publish_event(topics, &update)
                .await
                .map_err(|e| refusal_for(&e))?;
            record(
                publisher,
                topics,
                sender,
                AnalyticsKind::MessageRead,
                Some(&conversation_id),
                now,
            );
            Ok(None)
        }
        Command::History {
            conversation_id,
            before,
            limit,
        } => {
            let conversation = member_of(store, sender, &conversation_id).await?;
            let (mut messages, mut next_before) = store
                .history(&conversation_id, before, limit)
                .await
                .map_err(|e| refusal_for(&e))?;
            // 100 messages of 4,000 characters would not fit one reply: cut by size too.
            let fit = fitting(&messages, REPLY_ITEMS_BUDGET);
            if fit < messages.len() {
                messages.truncate(fit);
                next_before = messages.last().map(|m| m.message_id);
            }
            with_receipt_statuses(store, &conversation, user, &mut messages).await?;
            Ok(Some(Reply::History {
                conversation_id,
                messages,
                next_before,
            }))
        }
        Command::RegisterDevice { token, platform } => {
            let device = Device {
                user: user.clone(),
                token,
                platform,
            };
            store.register_device(&device).await.map_err(|e| refusal_for(&e))?;
            Ok(Some(Reply::DeviceRegistered))
        }
        Command::GetPresence { users } => {
            let users = crate::presence::presence_of(store, user, &users)
                .await
                .map_err(|e| refusal_for(&e))?;
            if users.is_empty() {
                return Err(Refusal::new(
                    ErrorCode::NotFound,
                    "none of these users shares a conversation with you",
                ));
            }
            Ok(Some(Reply::Presence { users }))
        }
        Command::RenameConversation { conversation_id, title } => {
            member_of(store, sender, &conversation_id).await?;
            let renamed = store
                .set_title(&conversation_id, title.as_ref())
                .await
                .map_err(|e| refusal_for(&e))?
                .ok_or_else(|| Refusal::new(ErrorCode::NotFound, format!("no conversation {conversation_id}")))?;
            Ok(Some(conversation_reply(renamed)))
        }
        Command::AddMembers {
            conversation_id,
            members,
        } => Ok(Some(conversation_reply(
            add_members(store, sender, &conversation_id, &members).await?,
        ))),
        Command::RemoveMember {
            conversation_id,
            user_id,
        } => {
            let changed = change_members(store, sender, &conversation_id, &user_id, |current| {
                if *user != current.created_by && *user != user_id {
                    return Err(Refusal::new(
                        ErrorCode::Forbidden,
                        "only the creator removes others; anyone may leave",
                    ));
                }
                without(current, &user_id)
            })
            .await?;
            Ok(Some(conversation_reply(changed)))
        }
        Command::LeaveConversation { conversation_id } => {
            let changed =
                change_members(store, sender, &conversation_id, user, |current| without(current, user)).await?;
            Ok(Some(conversation_reply(changed)))
        }
        Command::ConversationStats { conversation_id, days } => {
            member_of(store, sender, &conversation_id).await?;
            let days = crate::analytics::conversation_stats(store, &conversation_id, days, now)
                .await
                .map_err(|e| refusal_for(&e))?;
            Ok(Some(Reply::Stats { conversation_id, days }))
        }
        Command::Unread => {
            let mut all = store.conversations_of(user).await.map_err(|e| refusal_for(&e))?;
            all.sort_by_key(|c| std::cmp::Reverse(c.activity_key()));
            let conversations: Vec<UnreadCount> = all
                .into_iter()
                .filter(|c| c.unread > 0)
                .map(|c| UnreadCount {
                    conversation_id: c.conversation_id,
                    unread: c.unread,
                })
                .collect();
            Ok(Some(Reply::Unread {
                total: conversations.iter().map(|c| c.unread).sum(),
                conversations,
            }))
        }
        Command::UnregisterDevice { token } => {
            let device = Device {
                user: user.clone(),
                token,
                platform: "fcm".into(),
            };
            store.remove_device(&device).await.map_err(|e| refusal_for(&e))?;
            Ok(Some(Reply::DeviceUnregistered))
        }
    }
}

/// What the WebSocket and HTTP fronts act with (ws-message and http-api hold these).
pub struct Front<'a, S, P, F> {
    pub store: &'a S,
    pub publisher: &'a P,
    /// `@connections`: a conversation change is announced to its members' devices.
    pub poster: &'a F,
    pub topics: &'a Topics,
    pub rules: &'a Rules,
}

impl<S, P, F> Front<'_, S, P, F>
where
    S: ConversationStore + ConnectionRegistry + DeviceStore + ConnectionDirectory + PresenceStore + AnalyticsStore,
    P: Publisher,
    F: crate::ports::FramePoster,
{
    /// Performs the sender's action in `trace` (what it sends carries it), then announces the
    /// conversation change it made, if any, to the members' devices but `except` (the asking
    /// connection, which has the reply).
    pub async fn act(
        &self,
        sender: &Sender,
        command: Command,
        trace: crate::trace::Trace,
        except: Option<&ConnectionId>,
    ) -> Result<Option<Reply>, Refusal> {
        let change = crate::announce::change_of(&command, &sender.identity.user);
        let performed = perform(
            self.store,
            self.publisher,
            self.topics,
            self.rules,
            sender,
            command,
            Utc::now(),
        );
        let result = crate::trace::within(trace, performed).await;
        let reply = result.as_ref().ok().and_then(Option::as_ref);
        crate::announce::announce_reply(self.store, self.poster, change, reply, &sender.identity.user, except).await;
        result
    }
}

/// One page of the user's conversations (most recent first): those after the cursor, at most
/// `limit`, at most what fits a reply; large groups list their first members only.
pub fn conversation_page(
    mut all: Vec<ConversationSummary>,
    limit: u32,
    after: Option<&str>,
) -> (Vec<ConversationSummary>, Option<String>) {
    all.sort_by_key(|c| std::cmp::Reverse(c.activity_key()));
    let mut page: Vec<ConversationSummary> = all
        .into_iter()
        .filter(|c| after.is_none_or(|a| c.activity_key().as_str() < a))
        .collect();
    for c in &mut page {
        c.member_count = c.member_count.max(c.members.len());
        c.members.truncate(MAX_SUMMARY_MEMBERS);
    }
    let wanted = page.len().min(limit as usize);
    let fit = fitting(&page[..wanted], REPLY_ITEMS_BUDGET);
    let more = page.len() > fit;
    page.truncate(fit);
    let next = if more {
        page.last().map(|c| c.activity_key())
    } else {
        None
    };
    (page, next)
}

/// The id and time of a message being sent. Over HTTP its idempotency key makes a retried request
/// the same message (the key used for another message is a conflict); otherwise a new one.
async fn message_identity<S: ConversationStore>(
    store: &S,
    sender: &Sender,
    conversation_id: &ConversationId,
    content: &MessageContent,
    client_message_id: &Option<ClientMessageId>,
    now: DateTime<Utc>,
) -> Result<(MessageId, DateTime<Utc>), Refusal> {
    let (Origin::Http, Some(key)) = (&sender.origin, client_message_id) else {
        return Ok((MessageId::new(), now));
    };
    let claim = SendClaim {
        sender: sender.identity.user.clone(),
        key: key.clone(),
        conversation_id: conversation_id.clone(),
        content: content.to_string(),
        message_id: MessageId::new(),
        sent_at: now,
    };
    match store.claim_send(&claim).await.map_err(|e| refusal_for(&e))? {
        None => Ok((claim.message_id, claim.sent_at)),
        Some(earlier) if earlier.conversation_id == claim.conversation_id && earlier.content == claim.content => {
            Ok((earlier.message_id, earlier.sent_at))
        }
        Some(_) => Err(Refusal::new(
            ErrorCode::Conflict,
            "this idempotency key was used for another message",
        )),
    }
}

/// Sets the status the other members have reached on the asker's own messages of a history page,
/// newest first, as far as `MAX_RECEIPT_LOOKUPS` reaches.
async fn with_receipt_statuses<S: ConversationStore>(
    store: &S,
    conversation: &Conversation,
    asker: &UserId,
    messages: &mut [MessageView],
) -> Result<(), Refusal> {
    if conversation.is_large() {
        // Counted, not kept per reader: how many have read up to each of the asker's messages.
        let own: Vec<MessageId> = messages
            .iter()
            .filter(|m| m.sender_id == *asker)
            .map(|m| m.message_id)
            .collect();
        if own.is_empty() {
            return Ok(());
        }
        let counts = store
            .read_by(&conversation.id, asker, &own)
            .await
            .map_err(|e| refusal_for(&e))?;
        for m in messages.iter_mut() {
            m.read_by = counts.get(&m.message_id).copied();
        }
        return Ok(());
    }
    let others: Vec<UserId> = conversation.members.iter().filter(|m| *m != asker).cloned().collect();
    let room = MAX_RECEIPT_LOOKUPS / others.len().max(1);
    let own: Vec<MessageId> = messages
        .iter()
        .filter(|m| m.sender_id == *asker)
        .map(|m| m.message_id)
        .take(room)
        .collect();
    if own.is_empty() || others.is_empty() {
        return Ok(());
    }
    let statuses = store
        .receipt_statuses(&own, &others)
        .await
        .map_err(|e| refusal_for(&e))?;
    for m in messages.iter_mut() {
        m.status = statuses.get(&m.message_id).copied();
    }
    Ok(())
}

fn conversation_reply(c: Conversation) -> Reply {
    Reply::Conversation {
        member_count: c.member_count(),
        conversation_id: c.id,
        members: c.members,
        title: c.title,
    }
}

/// Adds members: to a small group's list while it stays small; past `MAX_SMALL_MEMBERS` it
/// becomes (or is) a large group, whose members are memberships only. Optimistic like every
/// change of members.
async fn add_members<S: ConversationStore>(
    store: &S,
    sender: &Sender,
    id: &ConversationId,
    members: &[UserId],
) -> Result<Conversation, Refusal> {
    for _ in 0..MEMBER_CHANGE_TRIES {
        let current = member_of(store, sender, id).await?;
        fixed_pair(&current)?;
        let new: Vec<UserId> =
            members
                .iter()
                .filter(|m| !current.members.contains(m))
                .fold(Vec::new(), |mut new, m| {
                    if !new.contains(m) {
                        new.push(m.clone());
                    }
                    new
                });
        if new.is_empty() {
            return Ok(current);
        }
        // A large group's count also counts those who turn out to be members already: never over.
        if current.member_count() + new.len() > MAX_MEMBERS {
            return Err(Refusal::new(
                ErrorCode::InvalidRequest,
                format!("members: a conversation has at most {MAX_MEMBERS} members"),
            ));
        }
        let changed = if current.is_large() || current.members.len() + new.len() > MAX_SMALL_MEMBERS {
            store.add_to_large(&current, &new).await
        } else {
            let all: Vec<UserId> = current.members.iter().chain(&new).cloned().collect();
            store.set_members(&current, &all).await
        };
        if let Some(changed) = changed.map_err(|e| refusal_for(&e))? {
            return Ok(changed);
        }
    }
    Err(Refusal::new(
        ErrorCode::Unavailable,
        "the members kept changing meanwhile; try again",
    ))
}

/// A conversation of two is a pair's direct conversation: its members never change.
fn fixed_pair(current: &Conversation) -> Result<(), Refusal> {
    if current.members.len() == 2 {
        return Err(Refusal::new(
            ErrorCode::InvalidRequest,
            "a conversation of two is its pair's direct conversation: start a group instead",
        ));
    }
    Ok(())
}

/// The members without `user`, who must be one (a large group's are not listed: the store
/// finds out).
fn without(current: &Conversation, user: &UserId) -> Result<Vec<UserId>, Refusal> {
    fixed_pair(current)?;
    if current.is_large() {
        return Ok(Vec::new());
    }
    if !current.members.contains(user) {
        return Err(Refusal::new(
            ErrorCode::NotFound,
            format!("{user} is not a member of {}", current.id),
        ));
    }
    Ok(current.members.iter().filter(|m| *m != user).cloned().collect())
}

/// How many times a change of members is tried when others change them at the same moment.
const MEMBER_CHANGE_TRIES: usize = 3;

/// Applies `change` to the members as they are now, as a member (optimistically: if they changed
/// meanwhile, reads them again and applies it again).
async fn change_members<S: ConversationStore>(
    store: &S,
    sender: &Sender,
    id: &ConversationId,
    removed: &UserId,
    change: impl Fn(&Conversation) -> Result<Vec<UserId>, Refusal>,
) -> Result<Conversation, Refusal> {
    for _ in 0..MEMBER_CHANGE_TRIES {
        let current = member_of(store, sender, id).await?;
        if current.is_large() {
            // Only checks the rule: a large group lists no members to change.
            change(&current)?;
            return store
                .remove_from_large(&current, removed)
                .await
                .map_err(|e| refusal_for(&e))?
                .ok_or_else(|| Refusal::new(ErrorCode::NotFound, format!("{removed} is not a member of {id}")));
        }
        let members = change(&current)?;
        if members == current.members {
            return Ok(current);
        }
        if let Some(changed) = store
            .set_members(&current, &members)
            .await
            .map_err(|e| refusal_for(&e))?
        {
            return Ok(changed);
        }
    }
    Err(Refusal::new(
        ErrorCode::Unavailable,
        "the members kept changing meanwhile; try again",
    ))
}

/// The conversation and a stored message of it that the sender sent (the only messages they may
/// change, as a member), taking one unit of their send budget.
async fn own_message<S: ConversationStore + ConnectionRegistry>(
    store: &S,
    sender: &Sender,
    conversation_id: &ConversationId,
    id: MessageId,
    now: DateTime<Utc>,
) -> Result<(Conversation, MessageView), Refusal> {
    let conversation = member_of(store, sender, conversation_id).await?;
    within_budget(store, sender, Limited::SendMessage, now).await?;
    let message = store
        .message(conversation_id, id)
        .await
        .map_err(|e| refusal_for(&e))?
        .ok_or_else(|| Refusal::new(ErrorCode::NotFound, format!("no message {id} in {conversation_id}")))?;
    if message.sender_id != sender.identity.user {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            "only its sender may change a message",
        ));
    }
    Ok((conversation, message))
}

/// Publishes the sender's change to a message, to its conversation's members as they are now;
/// returns once the broker has it.
async fn publish_change<P: Publisher>(
    publisher: &P,
    topics: &Topics,
    sender: &Sender,
    conversation: Conversation,
    message_id: MessageId,
    change: Change,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let change = MessageChange {
        schema_version: SCHEMA_VERSION,
        message_id,
        large_group: conversation.is_large(),
        conversation_id: conversation.id,
        sender_id: sender.identity.user.clone(),
        change,
        changed_at: now,
        recipients: conversation.members,
        fanout_after: None,
    };
    publisher
        .publish_event(topics, &change)
        .await
        .map_err(|e| refusal_for(&e))
}

/// Takes one unit of the connection's budget for `action`, or refuses with `rate_limited`.
async fn within_budget<S: ConnectionRegistry>(
    store: &S,
    sender: &Sender,
    action: Limited,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    if store
        .allow(sender.budget(), action, now)
        .await
        .map_err(|e| refusal_for(&e))?
    {
        Ok(())
    } else {
        Err(Refusal::new(ErrorCode::RateLimited, action.describe()))
    }
}

/// The conversation, if it exists and the sender is a member.
async fn member_of<S: ConversationStore>(
    store: &S,
    sender: &Sender,
    id: &ConversationId,
) -> Result<Conversation, Refusal> {
    let conversation = store
        .conversation(id)
        .await
        .map_err(|e| refusal_for(&e))?
        .ok_or_else(|| Refusal::new(ErrorCode::NotFound, format!("no conversation {id}")))?;
    let member = if conversation.is_large() {
        store
            .is_member(id, &sender.identity.user)
            .await
            .map_err(|e| refusal_for(&e))?
    } else {
        conversation.members.contains(&sender.identity.user)
    };
    if !member {
        return Err(Refusal::new(
            ErrorCode::NotAMember,
            format!("you are not a member of {id}"),
        ));
    }
    Ok(conversation)
}

/// Queues an analytics event. Best effort and never waited on: losing a counter must not fail
/// or slow a user's action (with the broker down, `$connect` still answers at once).
pub fn record<P: Publisher>(
    publisher: &P,
    topics: &Topics,
    sender: &Sender,
    kind: AnalyticsKind,
    conversation: Option<&ConversationId>,
    now: DateTime<Utc>,
) {
    let event = AnalyticsEvent {
        schema_version: SCHEMA_VERSION,
        event_id: MessageId::new(),
        kind,
        user_id: sender.identity.user.clone(),
        conversation_id: conversation.cloned(),
        at: now,
    };
    if let Err(e) = publisher.publish_event_best_effort(topics, &event) {
        warn!(kind = kind.as_str(), error = %e.chain(), "analytics event not queued");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Memory, user};
    use relaychat_schema::DisplayName;
    use relaychat_schema::events::TopicEvent;

    fn sender(name: &str) -> Sender {
        Sender::socket(
            ConnectionId::parse(format!("{name}-conn")).unwrap(),
            Identity {
                user: user(name),
                name: DisplayName::parse(name).unwrap(),
                expires_at: None,
            },
        )
    }

    /// `who` sends `body` on their connection, which `$connect` registered.
    async fn run(mem: &Memory, who: &str, body: &str) -> Result<Option<Reply>, Refusal> {
        let sender = sender(who);
        connected(mem, &sender).await;
        perform(
            mem,
            mem,
            &Topics::default(),
            &Rules::default(),
            &sender,
            Command::parse(body)?,
            Utc::now(),
        )
        .await
    }

    /// Registers the sender's connection, as `$connect` does.
    async fn connected(mem: &Memory, sender: &Sender) {
        if let Origin::Socket(connection) = &sender.origin {
            mem.register(connection, &sender.identity).await.unwrap();
        }
    }

    async fn create(mem: &Memory) -> ConversationId {
        match run(
            mem,
            "alice",
            r#"{"action":"createConversation","members":["bob","bob"]}"#,
        )
        .await
        .unwrap()
        {
            Some(Reply::Conversation {
                conversation_id,
                members,
                ..
            }) => {
                assert_eq!(
                    members,
                    vec![user("alice"), user("bob")],
                    "the creator is a member, duplicates dropped"
                );
                conversation_id
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_member_sends_and_gets_an_ack_after_the_broker_has_it() {
        let mem = Memory::default();
        let conv = create(&mem).await;
        let body =
            format!(r#"{{"action":"sendMessage","conversationId":"{conv}","content":"hi","clientMessageId":"c-1"}}"#);
        let Some(Reply::Ack {
            client_message_id,
            status,
            ..
        }) = run(&mem, "alice", &body).await.unwrap()
        else {
            panic!("expected an ack")
        };
        assert_eq!(
            (client_message_id.unwrap().as_str(), status),
            ("c-1", DeliveryStatus::Sent)
        );
        let published = mem.published("chat-messages");
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].0, conv.to_string(), "keyed by conversation");
        assert_eq!(published[0].1["senderId"], "alice");
        assert_eq!(published[0].1["recipients"], serde_json::json!(["alice", "bob"]));
    }

    #[tokio::test]
    async fn a_sender_named_in_the_body_is_ignored() {
        let mem = Memory::default();
        let conv = create(&mem).await;
        let body = format!(
            r#"{{"action":"sendMessage","conversationId":"{conv}","content":"hi","senderId":"bob","sender":"bob"}}"#
        );
        assert!(matches!(run(&mem, "alice", &body).await, Ok(Some(Reply::Ack { .. }))));
        let published = mem.published("chat-messages");
        assert_eq!(published.len(), 1);
        assert_eq!(
            published[0].1["senderId"], "alice",
            "the connection's user, not the body's"
        );
    }

    #[tokio::test]
    async fn outsiders_and_unknown_conversations_are_refused() {
        let mem = Memory::default();
        let conv = create(&mem).await;
        let body =
            format!(r#"{{"action":"sendMessage","conversationId":"{conv}","content":"hi","clientMessageId":"x"}}"#);
        let refused = run(&mem, "mallory", &body).await.unwrap_err();
        assert_eq!(
            (refused.code, refused.client_message_id.unwrap().as_str()),
            (ErrorCode::NotAMember, "x")
        );
        let history = r#"{"action":"history","conversationId":"nope"}"#;
        assert_eq!(run(&mem, "alice", history).await.unwrap_err().code, ErrorCode::NotFound);
        assert!(mem.published("chat-messages").is_empty());
    }

    #[tokio::test]
    async fn when_the_broker_is_down_the_sender_gets_unavailable_never_an_ack() {
        let mem = Memory::default();
        let conv = create(&mem).await;
        mem.fail_publishing();
        let body =
            format!(r#"{{"action":"sendMessage","conversationId":"{conv}","content":"hi","clientMessageId":"c-9"}}"#);
        let refused = run(&mem, "alice", &body).await.unwrap_err();
        assert_eq!(refused.code, ErrorCode::Unavailable);
        assert_eq!(refused.client_message_id.unwrap().as_str(), "c-9");
    }

    #[tokio::test]
    async fn typing_is_rate_limited_per_connection() {
        let mem = Memory::default();
        let conv = create(&mem).await;
        let body = format!(r#"{{"action":"typing","conversationId":"{conv}","isTyping":true}}"#);
        assert_eq!(run(&mem, "alice", &body).await.unwrap(), None);
        assert_eq!(
            run(&mem, "alice", &body).await.unwrap_err().code,
            ErrorCode::RateLimited
        );
        assert_eq!(
            run(&mem, "bob", &body).await.unwrap(),
            None,
            "another connection has its own budget"
        );
        assert_eq!(mem.published("typing-events").len(), 2);
    }

    #[tokio::test]
    async fn mark_read_publishes_a_read_update_keyed_by_the_reader() {
        let mem = Memory::default();
        let conv = create(&mem).await;
        let id = MessageId::new();
        let body = format!(r#"{{"action":"markRead","conversationId":"{conv}","messageId":"{id}"}}"#);
        assert_eq!(run(&mem, "bob", &body).await.unwrap(), None);
        let updates = mem.published("message-status-events");
        assert_eq!(updates[0].0, "bob");
        assert_eq!(
            (updates[0].1["status"].as_str(), updates[0].1["userId"].as_str()),
            (Some("READ"), Some("bob"))
        );
        assert_eq!(
            mem.published("analytics-events").len(),
            2,
            "conversationCreated, messageRead"
        );
    }

    #[tokio::test]
    async fn sending_and_creating_are_rate_limited_per_connection() {
        let mem = Memory::default();
        let conv = create(&mem).await;
        let body =
            format!(r#"{{"action":"sendMessage","conversationId":"{conv}","content":"hi","clientMessageId":"m"}}"#);
        let now = Utc::now();
        let at = |body: &str, who: &str| {
            let mem = &mem;
            let body = body.to_owned();
            let who = who.to_owned();
            async move {
                perform(
                    mem,
                    mem,
                    &Topics::default(),
                    &Rules::default(),
                    &sender(&who),
                    Command::parse(&body)?,
                    now,
                )
                .await
            }
        };
        for who in ["alice", "bob"] {
            let s = sender(who);
            connected(&mem, &s).await;
        }
        for _ in 0..Limited::SendMessage.limit().max {
            assert!(at(&body, "alice").await.is_ok());
        }
        let refused = at(&body, "alice").await.unwrap_err();
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert_eq!(refused.client_message_id.unwrap().as_str(), "m");
        assert_eq!(
            mem.published("chat-messages").len(),
            Limited::SendMessage.limit().max as usize
        );
        let create_body = r#"{"action":"createConversation","members":["carol"]}"#;
        let mut created = 1; // create() above, at its own time
        while at(create_body, "bob").await.is_ok() {
            created += 1;
            assert!(created <= 10, "never refused");
        }
        assert_eq!(created - 1, Limited::CreateConversation.limit().max);
    }

    #[tokio::test]
    async fn a_retried_create_conversation_answers_with_the_first() {
        let mem = Memory::default();
        let body = r#"{"action":"createConversation","members":["bob"],"clientRequestId":"r-1"}"#;
        let mut ids = Vec::new();
        for _ in 0..2 {
            match run(&mem, "alice", body).await.unwrap() {
                Some(Reply::Conversation { conversation_id, .. }) => ids.push(conversation_id),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(ids[0], ids[1]);
        assert_eq!(
            mem.published("analytics-events").len(),
            1,
            "one conversationCreated, not two"
        );
    }

    #[tokio::test]
    async fn analytics_are_queued_never_waited_on() {
        // With the broker down, the action that records analytics still succeeds.
        let mem = Memory::default();
        let conv = create(&mem).await;
        mem.fail_publishing();
        let id = MessageId::new();
        let body = format!(r#"{{"action":"markRead","conversationId":"{conv}","messageId":"{id}"}}"#);
        assert_eq!(run(&mem, "bob", &body).await.unwrap_err().code, ErrorCode::Unavailable);
        let create = r#"{"action":"createConversation","members":["carol"]}"#;
        assert!(matches!(
            run(&mem, "bob", create).await,
            Ok(Some(Reply::Conversation { .. }))
        ));
    }

    #[tokio::test]
    async fn only_the_sender_edits_within_the_window_and_deletes_once() {
        // GIVEN alice's stored message in her conversation with bob
        let mem = Memory::default();
        let conv = create(&mem).await;
        let m = crate::memory::sample_message(conv.as_str(), "alice", &["alice", "bob"]);
        crate::persist::persist_message(&mem, &m).await.unwrap();
        let id = m.message_id;
        let edit =
            format!(r#"{{"action":"editMessage","conversationId":"{conv}","messageId":"{id}","content":"fixed"}}"#);
        let delete = format!(r#"{{"action":"deleteMessage","conversationId":"{conv}","messageId":"{id}"}}"#);
        // WHEN bob, an outsider, or anyone about an unknown message tries: THEN each is refused
        assert_eq!(run(&mem, "bob", &edit).await.unwrap_err().code, ErrorCode::Forbidden);
        assert_eq!(run(&mem, "bob", &delete).await.unwrap_err().code, ErrorCode::Forbidden);
        assert_eq!(
            run(&mem, "mallory", &edit).await.unwrap_err().code,
            ErrorCode::NotAMember
        );
        let unknown = edit.replace(&id.to_string(), &MessageId::new().to_string());
        assert_eq!(
            run(&mem, "alice", &unknown).await.unwrap_err().code,
            ErrorCode::NotFound
        );
        // AND past the window even alice is refused
        let alice = sender("alice");
        let narrow = Rules {
            edit_window: chrono::Duration::minutes(1),
        };
        let late = m.sent_at + chrono::Duration::minutes(2);
        let refused = perform(
            &mem,
            &mem,
            &Topics::default(),
            &narrow,
            &alice,
            Command::parse(&edit).unwrap(),
            late,
        )
        .await
        .unwrap_err();
        assert_eq!(refused.code, ErrorCode::Forbidden);
        assert!(
            mem.published("chat-messages").is_empty(),
            "nothing refused was published"
        );
        // WHEN alice edits in time: THEN the edit goes to chat-messages, keyed by the conversation
        let Some(Reply::MessageEdited { content, .. }) = run(&mem, "alice", &edit).await.unwrap() else {
            panic!("an edit reply")
        };
        assert_eq!(content.as_str(), "fixed");
        let published = mem.published("chat-messages");
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].0, conv.to_string());
        assert_eq!(
            (published[0].1["change"].as_str(), published[0].1["content"].as_str()),
            (Some("edited"), Some("fixed"))
        );
        assert_eq!(published[0].1["recipients"], serde_json::json!(["alice", "bob"]));
        // WHEN she deletes it (and it is stored), then deletes again and tries an edit
        let Some(Reply::MessageDeleted { deleted_at, .. }) = run(&mem, "alice", &delete).await.unwrap() else {
            panic!("a deletion reply")
        };
        let stored =
            relaychat_schema::ChatEvent::from_json(&serde_json::to_vec(&mem.published("chat-messages")[1].1).unwrap())
                .unwrap();
        crate::persist::persist_event(&mem, &stored).await.unwrap();
        let Some(Reply::MessageDeleted { deleted_at: again, .. }) = run(&mem, "alice", &delete).await.unwrap() else {
            panic!("a deletion reply")
        };
        // THEN the second deletion is the first one, published once; an edit of a tombstone conflicts
        assert_eq!(again.timestamp_millis(), deleted_at.timestamp_millis());
        assert_eq!(mem.published("chat-messages").len(), 2);
        assert_eq!(run(&mem, "alice", &edit).await.unwrap_err().code, ErrorCode::Conflict);
    }

    #[tokio::test]
    async fn a_group_grows_large_and_its_events_name_no_recipients() {
        // GIVEN alice's group with bob, grown past a small group's size in one addMembers
        let mem = Memory::default();
        let created = run(
            &mem,
            "alice",
            r#"{"action":"createConversation","members":["bob","carol"]}"#,
        )
        .await
        .unwrap();
        let Some(Reply::Conversation {
            conversation_id: conv, ..
        }) = created
        else {
            panic!("{created:?}")
        };
        let many: Vec<String> = (0..MAX_SMALL_MEMBERS).map(|i| format!(r#""m{i:03}""#)).collect();
        let add = format!(
            r#"{{"action":"addMembers","conversationId":"{conv}","members":[{}]}}"#,
            many.join(",")
        );
        let Some(Reply::Conversation {
            members, member_count, ..
        }) = run(&mem, "bob", &add).await.unwrap()
        else {
            panic!("a conversation reply")
        };
        assert_eq!(
            (members.len(), member_count),
            (0, 102),
            "a large group lists no members"
        );
        // WHEN a member sends, types and reads; an outsider tries to send
        let send = format!(r#"{{"action":"sendMessage","conversationId":"{conv}","content":"hi all"}}"#);
        assert!(matches!(run(&mem, "m042", &send).await, Ok(Some(Reply::Ack { .. }))));
        assert_eq!(
            run(&mem, "mallory", &send).await.unwrap_err().code,
            ErrorCode::NotAMember
        );
        let typing = format!(r#"{{"action":"typing","conversationId":"{conv}"}}"#);
        assert_eq!(run(&mem, "m007", &typing).await.unwrap(), None);
        let id = MessageId::new();
        let read = format!(r#"{{"action":"markRead","conversationId":"{conv}","messageId":"{id}"}}"#);
        run(&mem, "bob", &read).await.unwrap();
        // THEN the message names no recipients and is marked large; typing is not relayed; the
        // read is by position
        let sent = mem.published("chat-messages");
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (
                sent[0].1["largeGroup"].as_bool(),
                sent[0].1["recipients"].as_array().map(Vec::len)
            ),
            (Some(true), Some(0))
        );
        assert!(mem.published("typing-events").is_empty());
        assert_eq!(mem.published("message-status-events")[0].1["largeGroup"], true);
        // AND anyone may leave, only the creator removes others, and the count follows
        let leave = format!(r#"{{"action":"leaveConversation","conversationId":"{conv}"}}"#);
        let Some(Reply::Conversation { member_count, .. }) = run(&mem, "m042", &leave).await.unwrap() else {
            panic!("a conversation reply")
        };
        assert_eq!(member_count, 101);
        assert_eq!(run(&mem, "m042", &send).await.unwrap_err().code, ErrorCode::NotAMember);
        let remove = format!(r#"{{"action":"removeMember","conversationId":"{conv}","userId":"m001"}}"#);
        assert_eq!(run(&mem, "bob", &remove).await.unwrap_err().code, ErrorCode::Forbidden);
        assert!(run(&mem, "alice", &remove).await.is_ok());
        assert_eq!(run(&mem, "alice", &remove).await.unwrap_err().code, ErrorCode::NotFound);
    }

    #[tokio::test]
    async fn history_pages_by_size_never_over_a_reply() {
        // GIVEN 100 messages of 4,000 characters (about 400 KB)
        let mem = Memory::default();
        let conv = create(&mem).await;
        for i in 0..100 {
            let mut m = crate::memory::sample_message(conv.as_str(), "alice", &["alice", "bob"]);
            m.content = relaychat_schema::MessageContent::parse(format!("{i:04}").repeat(1_000)).unwrap();
            crate::persist::persist_message(&mem, &m).await.unwrap();
        }
        // WHEN bob pages through with the largest limit
        let mut before: Option<MessageId> = None;
        let mut seen = Vec::new();
        loop {
            let body = match before {
                Some(b) => format!(r#"{{"action":"history","conversationId":"{conv}","limit":100,"before":"{b}"}}"#),
                None => format!(r#"{{"action":"history","conversationId":"{conv}","limit":100}}"#),
            };
            let reply = run(&mem, "bob", &body).await.unwrap().unwrap();
            // THEN every reply fits API Gateway's 128 KB
            assert!(reply.to_json().len() <= relaychat_schema::protocol::MAX_MESSAGE_BYTES);
            let Reply::History {
                messages, next_before, ..
            } = reply
            else {
                panic!()
            };
            seen.extend(messages.iter().map(|m| m.message_id));
            match next_before {
                Some(n) => before = Some(n),
                None => break,
            }
            assert!(seen.len() <= 100, "no page repeats");
        }
        // AND together the pages hold every message once, newest first
        assert_eq!(seen.len(), 100);
        assert!(seen.windows(2).all(|w| w[0] > w[1]));
    }

    #[tokio::test]
    async fn list_conversations_pages_and_every_page_fits_a_reply() {
        // GIVEN mallory added bob to 300 groups of the largest size created at once, with long titles
        let mem = Memory::default();
        let others: Vec<String> = (0..97).map(|i| format!("member-with-a-long-name-{i}")).collect();
        for i in 0..300 {
            let mut members = vec![r#""bob""#.to_owned()];
            members.extend(others.iter().map(|m| format!("{m:?}")));
            let body = format!(
                r#"{{"action":"createConversation","members":[{}],"title":"{}"}}"#,
                members.join(","),
                format!("spam {i} ").repeat(10)
            );
            // a fresh connection each time: the rate limit is per connection
            let mallory = sender(&format!("mallory{i}"));
            connected(&mem, &mallory).await;
            perform(
                &mem,
                &mem,
                &Topics::default(),
                &Rules::default(),
                &mallory,
                Command::parse(&body).unwrap(),
                Utc::now(),
            )
            .await
            .unwrap();
        }
        // WHEN bob lists his conversations, page after page
        let mut after: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        let mut pages = 0;
        loop {
            let body = match &after {
                Some(a) => format!(r#"{{"action":"listConversations","limit":100,"after":"{a}"}}"#),
                None => r#"{"action":"listConversations","limit":100}"#.to_owned(),
            };
            let reply = run(&mem, "bob", &body).await.unwrap().unwrap();
            assert!(reply.to_json().len() <= relaychat_schema::protocol::MAX_MESSAGE_BYTES);
            let Reply::Conversations {
                conversations,
                next_cursor,
            } = reply
            else {
                panic!()
            };
            pages += 1;
            for c in &conversations {
                assert!(c.members.len() <= MAX_SUMMARY_MEMBERS);
                assert_eq!(c.member_count, MAX_SMALL_MEMBERS);
                assert!(seen.insert(c.conversation_id.clone()), "listed twice");
            }
            match next_cursor {
                Some(n) => after = Some(n),
                None => break,
            }
            assert!(pages < 100, "never ends");
        }
        // THEN all 300 were listed, each once, over several pages
        assert_eq!(seen.len(), 300);
        assert!(pages > 3, "{pages} pages");
    }

    #[tokio::test]
    async fn members_add_rename_remove_and_leave_groups_within_the_rules() {
        let mem = Memory::default();
        let group = match run(
            &mem,
            "alice",
            r#"{"action":"createConversation","members":["bob","carol"]}"#,
        )
        .await
        .unwrap()
        {
            Some(Reply::Conversation { conversation_id, .. }) => conversation_id,
            other => panic!("{other:?}"),
        };
        let members = |reply: Result<Option<Reply>, Refusal>| match reply {
            Ok(Some(Reply::Conversation { members, .. })) => members,
            other => panic!("{other:?}"),
        };
        let ask = |action: &str, extra: &str| format!(r#"{{"action":"{action}","conversationId":"{group}"{extra}}}"#);
        assert_eq!(
            members(run(&mem, "bob", &ask("addMembers", r#","members":["dave","alice"]"#)).await),
            [user("alice"), user("bob"), user("carol"), user("dave")],
            "any member adds; members already in are not added twice"
        );
        let refused = run(&mem, "mallory", &ask("addMembers", r#","members":["mallory"]"#)).await;
        assert_eq!(refused.unwrap_err().code, ErrorCode::NotAMember);
        let refused = run(&mem, "bob", &ask("removeMember", r#","userId":"carol""#)).await;
        assert_eq!(
            refused.unwrap_err().code,
            ErrorCode::Forbidden,
            "only the creator removes others"
        );
        assert_eq!(
            members(run(&mem, "alice", &ask("removeMember", r#","userId":"carol""#)).await),
            [user("alice"), user("bob"), user("dave")]
        );
        assert_eq!(
            members(run(&mem, "dave", &ask("leaveConversation", "")).await),
            [user("alice"), user("bob")]
        );
        let refused = run(&mem, "dave", &ask("history", "")).await;
        assert_eq!(refused.unwrap_err().code, ErrorCode::NotAMember, "gone once left");
        let refused = run(&mem, "bob", &ask("leaveConversation", "")).await;
        assert_eq!(
            refused.unwrap_err().code,
            ErrorCode::InvalidRequest,
            "two members are fixed"
        );
        match run(&mem, "bob", &ask("renameConversation", r#","title":"Lunch""#)).await {
            Ok(Some(Reply::Conversation { title, .. })) => assert_eq!(title.unwrap().as_str(), "Lunch"),
            other => panic!("{other:?}"),
        }
        let direct = create(&mem).await;
        let add = format!(r#"{{"action":"addMembers","conversationId":"{direct}","members":["erin"]}}"#);
        assert_eq!(
            run(&mem, "alice", &add).await.unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[tokio::test]
    async fn history_shows_the_asker_the_status_of_their_own_messages_only() {
        use crate::memory::sample_message;
        use crate::ports::{MessageStore, Receipts};
        let mem = Memory::default();
        let conv = create(&mem).await;
        let mine = sample_message(conv.as_str(), "alice", &["alice", "bob"]);
        let theirs = sample_message(conv.as_str(), "bob", &["alice", "bob"]);
        for m in [&mine, &theirs] {
            mem.insert_message(m).await.unwrap();
        }
        mem.advance_receipt(
            mine.message_id,
            &conv,
            &user("bob"),
            DeliveryStatus::Delivered,
            Utc::now(),
        )
        .await
        .unwrap();
        let ask = format!(r#"{{"action":"history","conversationId":"{conv}"}}"#);
        let Some(Reply::History { messages, .. }) = run(&mem, "alice", &ask).await.unwrap() else {
            panic!("expected history")
        };
        let status_of = |id| messages.iter().find(|m| m.message_id == id).map(|m| m.status);
        assert_eq!(status_of(mine.message_id), Some(Some(DeliveryStatus::Delivered)));
        assert_eq!(status_of(theirs.message_id), Some(None), "not alice's to know");
    }

    #[tokio::test]
    async fn over_http_an_idempotency_key_makes_a_retry_the_same_message() {
        let mem = Memory::default();
        let conv = create(&mem).await;
        let alice = Sender::http(sender("alice").identity);
        let send = |content: &str| {
            Command::parse(&format!(
                r#"{{"action":"sendMessage","conversationId":"{conv}","content":"{content}","clientMessageId":"k-1"}}"#
            ))
            .unwrap()
        };
        let ack = |reply: Result<Option<Reply>, Refusal>| match reply {
            Ok(Some(Reply::Ack { message_id, .. })) => message_id,
            other => panic!("{other:?}"),
        };
        let topics = Topics::default();
        let first = ack(perform(&mem, &mem, &topics, &Rules::default(), &alice, send("hi"), Utc::now()).await);
        let again = ack(perform(&mem, &mem, &topics, &Rules::default(), &alice, send("hi"), Utc::now()).await);
        assert_eq!(first, again, "the retry is the same message");
        let published = mem.published("chat-messages");
        assert!(
            published.iter().all(|p| p.1["messageId"] == first.to_string()),
            "published again, same id"
        );
        let refused = perform(
            &mem,
            &mem,
            &topics,
            &Rules::default(),
            &alice,
            send("something else"),
            Utc::now(),
        )
        .await
        .unwrap_err();
        assert_eq!(refused.code, ErrorCode::Conflict);
        // Over the socket the id is the client's own label, as before: a new message each time.
        let body =
            format!(r#"{{"action":"sendMessage","conversationId":"{conv}","content":"hi","clientMessageId":"k-1"}}"#);
        let over_socket = ack(run(&mem, "alice", &body).await);
        assert_ne!(over_socket, first);
    }

    #[tokio::test]
    async fn stats_are_daily_counts_for_members_only() {
        use crate::analytics::counters_for_message;
        use crate::memory::sample_message;
        use crate::ports::{AnalyticsStore, Counted};
        let mem = Memory::default();
        let conv = create(&mem).await;
        let m = sample_message(conv.as_str(), "alice", &["alice", "bob"]);
        let counted = Counted {
            id: format!("message#{}", m.message_id),
            keys: counters_for_message(&m),
        };
        mem.count_once(&[counted]).await.unwrap();
        let ask = format!(r#"{{"action":"conversationStats","conversationId":"{conv}","days":3}}"#);
        let Some(Reply::Stats { days, .. }) = run(&mem, "bob", &ask).await.unwrap() else {
            panic!("expected stats")
        };
        assert_eq!(days.len(), 3, "three days, oldest first");
        assert_eq!((days[2].messages, days[2].reads), (1, 0), "today's message: {days:?}");
        assert_eq!(days[0].messages + days[1].messages, 0);
        assert!(days[0].date < days[2].date);
        let refused = run(&mem, "mallory", &ask).await.unwrap_err();
        assert_eq!(refused.code, ErrorCode::NotAMember);
        let too_many = format!(r#"{{"action":"conversationStats","conversationId":"{conv}","days":32}}"#);
        assert_eq!(
            run(&mem, "bob", &too_many).await.unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[tokio::test]
    async fn a_direct_conversation_is_one_per_pair_whoever_asks_again() {
        let mem = Memory::default();
        let first = create(&mem).await;
        let Some(Reply::Conversation { conversation_id, .. }) = run(
            &mem,
            "bob",
            r#"{"action":"createConversation","members":["alice"],"title":"again"}"#,
        )
        .await
        .unwrap() else {
            panic!("expected the conversation")
        };
        assert_eq!(
            conversation_id, first,
            "bob gets the pair's conversation, not a second one"
        );
        let Some(Reply::Conversation { conversation_id, .. }) = run(
            &mem,
            "alice",
            r#"{"action":"createConversation","members":["bob","carol"]}"#,
        )
        .await
        .unwrap() else {
            panic!("expected the conversation")
        };
        assert_ne!(conversation_id, first, "a group is a conversation of its own");
    }

    #[tokio::test]
    async fn unread_counts_each_conversation_with_unread_messages_and_their_total() {
        use crate::memory::sample_message;
        use crate::ports::MessageStore;
        let mem = Memory::default();
        let quiet = create(&mem).await;
        let busy = create(&mem).await;
        for _ in 0..2 {
            mem.insert_message(&sample_message(busy.as_str(), "alice", &["alice", "bob"]))
                .await
                .unwrap();
        }
        let Some(Reply::Unread { total, conversations }) = run(&mem, "bob", r#"{"action":"unread"}"#).await.unwrap()
        else {
            panic!("expected unread counts")
        };
        assert_eq!(total, 2);
        assert_eq!(
            conversations,
            vec![UnreadCount {
                conversation_id: busy,
                unread: 2
            }],
            "{quiet} has nothing unread: not listed"
        );
        let Some(Reply::Unread { total, conversations }) = run(&mem, "alice", r#"{"action":"unread"}"#).await.unwrap()
        else {
            panic!("expected unread counts")
        };
        assert_eq!(
            (total, conversations.len()),
            (0, 0),
            "a sender's own messages are not unread"
        );
    }

    #[tokio::test]
    async fn over_http_the_budget_is_the_users_with_no_connection() {
        let mem = Memory::default();
        let conv = create(&mem).await;
        let alice = Sender::http(sender("alice").identity);
        let send = Command::parse(&format!(
            r#"{{"action":"sendMessage","conversationId":"{conv}","content":"hi"}}"#
        ))
        .unwrap();
        let max = Limited::SendMessage.limit().max;
        let now = Utc::now();
        for _ in 0..max {
            perform(
                &mem,
                &mem,
                &Topics::default(),
                &Rules::default(),
                &alice,
                send.clone(),
                now,
            )
            .await
            .expect("within the budget");
        }
        let refused = perform(&mem, &mem, &Topics::default(), &Rules::default(), &alice, send, now)
            .await
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert_eq!(mem.published("chat-messages").len(), max as usize);
    }

    #[tokio::test]
    async fn a_device_is_registered_and_unregistered_by_its_user_only() {
        let mem = Memory::default();
        let register = r#"{"action":"registerDevice","token":"phone-1","platform":"fcm"}"#;
        assert_eq!(
            run(&mem, "carol", register).await.unwrap(),
            Some(Reply::DeviceRegistered)
        );
        assert_eq!(mem.device_tokens("carol"), vec!["phone-1".to_owned()]);
        // Another user naming carol's token removes nothing of hers.
        let unregister = r#"{"action":"unregisterDevice","token":"phone-1"}"#;
        assert_eq!(
            run(&mem, "mallory", unregister).await.unwrap(),
            Some(Reply::DeviceUnregistered)
        );
        assert_eq!(mem.device_tokens("carol"), vec!["phone-1".to_owned()]);
        assert_eq!(
            run(&mem, "carol", unregister).await.unwrap(),
            Some(Reply::DeviceUnregistered)
        );
        assert!(mem.device_tokens("carol").is_empty());
        let long = format!(r#"{{"action":"registerDevice","token":"{}"}}"#, "x".repeat(1_025));
        assert_eq!(
            run(&mem, "carol", &long).await.unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }
}
