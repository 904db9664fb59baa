//! The HTTP API (docs/openapi.yaml). Each route is a protocol action: its path parameters, query
//! and JSON body are read into the fields a WebSocket message carries, so one parser
//! (`Command`) checks both and refuses both with the same codes. Replies become resource bodies;
//! refusals become RFC 9457 problem documents with the code's HTTP status.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::ClientMessageId;
use crate::protocol::{Command, ErrorCode, Refusal, Reply};

/// One route of the HTTP API: API Gateway's route key, and the action it performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// As API Gateway names it in `routeKey` (and the template in its events): `GET /unread`.
    pub key: &'static str,
    pub action: &'static str,
    /// The query parameters it reads (others are ignored).
    pub query: &'static [&'static str],
    /// Whether it reads a JSON body.
    pub body: bool,
    /// The field an `Idempotency-Key` header fills, if the route takes one.
    pub idempotency_field: Option<&'static str>,
}

/// Every route, as the template deploys them and docs/openapi.yaml documents them.
pub const ROUTES: [Route; 16] = [
    Route {
        key: "GET /conversations",
        action: "listConversations",
        query: &["limit", "after"],
        body: false,
        idempotency_field: None,
    },
    Route {
        key: "POST /conversations",
        action: "createConversation",
        query: &[],
        body: true,
        idempotency_field: Some("clientRequestId"),
    },
    Route {
        key: "GET /conversations/{conversationId}/messages",
        action: "history",
        query: &["before", "limit"],
        body: false,
        idempotency_field: None,
    },
    Route {
        key: "POST /conversations/{conversationId}/messages",
        action: "sendMessage",
        query: &[],
        body: true,
        idempotency_field: Some("clientMessageId"),
    },
    Route {
        key: "PATCH /conversations/{conversationId}/messages/{messageId}",
        action: "editMessage",
        query: &[],
        body: true,
        idempotency_field: None,
    },
    Route {
        key: "DELETE /conversations/{conversationId}/messages/{messageId}",
        action: "deleteMessage",
        query: &[],
        body: false,
        idempotency_field: None,
    },
    Route {
        key: "POST /conversations/{conversationId}/read",
        action: "markRead",
        query: &[],
        body: true,
        idempotency_field: None,
    },
    Route {
        key: "PATCH /conversations/{conversationId}",
        action: "renameConversation",
        query: &[],
        body: true,
        idempotency_field: None,
    },
    Route {
        key: "POST /conversations/{conversationId}/members",
        action: "addMembers",
        query: &[],
        body: true,
        idempotency_field: None,
    },
    Route {
        key: "DELETE /conversations/{conversationId}/members/{userId}",
        action: "removeMember",
        query: &[],
        body: false,
        idempotency_field: None,
    },
    Route {
        key: "POST /conversations/{conversationId}/leave",
        action: "leaveConversation",
        query: &[],
        body: false,
        idempotency_field: None,
    },
    Route {
        key: "GET /conversations/{conversationId}/stats",
        action: "conversationStats",
        query: &["days"],
        body: false,
        idempotency_field: None,
    },
    Route {
        key: "GET /unread",
        action: "unread",
        query: &[],
        body: false,
        idempotency_field: None,
    },
    Route {
        key: "GET /users/{userId}/presence",
        action: "getPresence",
        query: &[],
        body: false,
        idempotency_field: None,
    },
    Route {
        key: "POST /devices",
        action: "registerDevice",
        query: &[],
        body: true,
        idempotency_field: None,
    },
    Route {
        key: "DELETE /devices/{token}",
        action: "unregisterDevice",
        query: &[],
        body: false,
        idempotency_field: None,
    },
];

impl Route {
    pub fn find(key: &str) -> Option<&'static Route> {
        ROUTES.iter().find(|r| r.key == key)
    }
}

/// The path parameters of a request (`method`, `path`) if it is the route `key`'s
/// (`GET /conversations/{conversationId}`; a method of `ANY` takes every method).
pub fn match_route<'k, 'p>(key: &'k str, method: &str, path: &'p str) -> Option<Vec<(&'k str, &'p str)>> {
    let (route_method, template) = key.split_once(' ')?;
    if route_method != "ANY" && !route_method.eq_ignore_ascii_case(method) {
        return None;
    }
    match_path(template, path)
}

/// The parameters of `path` if it has the shape of `template` (`/conversations/{conversationId}`):
/// the same segments, each `{name}` standing for one non-empty segment.
fn match_path<'t, 'p>(template: &'t str, path: &'p str) -> Option<Vec<(&'t str, &'p str)>> {
    let template: Vec<&str> = template.trim_matches('/').split('/').collect();
    let actual: Vec<&str> = path.trim_matches('/').split('/').collect();
    if template.len() != actual.len() {
        return None;
    }
    let mut params = Vec::new();
    for (t, a) in template.into_iter().zip(actual) {
        match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            Some(name) if !a.is_empty() => params.push((name, a)),
            Some(_) => return None,
            None if t == a => {}
            None => return None,
        }
    }
    Some(params)
}

/// What an HTTP request brings to its route.
#[derive(Debug, Default, Clone)]
pub struct HttpRequest<'a> {
    pub path_parameters: Vec<(&'a str, &'a str)>,
    pub query: Vec<(&'a str, &'a str)>,
    /// The body as text; empty for none.
    pub body: &'a str,
    pub idempotency_key: Option<&'a str>,
}

impl Route {
    /// The request read as this route's command, checked as the WebSocket action is.
    pub fn command(&self, request: &HttpRequest<'_>) -> Result<Command, Refusal> {
        let mut fields = if self.body && !request.body.trim().is_empty() {
            match Command::object(request.body)? {
                Value::Object(fields) => fields,
                _ => Map::new(),
            }
        } else {
            Map::new()
        };
        if let (Some(field), Some(key)) = (self.idempotency_field, request.idempotency_key) {
            match fields.get(field) {
                Some(Value::String(given)) if given != key => {
                    return Err(Refusal::new(
                        ErrorCode::InvalidRequest,
                        format!("Idempotency-Key and {field} differ: send one of them"),
                    ));
                }
                _ => {
                    ClientMessageId::parse(key)
                        .map_err(|e| Refusal::new(ErrorCode::InvalidRequest, format!("Idempotency-Key: {e}")))?;
                    fields.insert(field.into(), key.into());
                }
            }
        }
        for (name, value) in &request.query {
            if self.query.contains(name) {
                // A number where the protocol takes one, so `limit=abc` is refused as `limit`.
                let value = match value.parse::<u64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => Value::from(*value),
                };
                fields.insert((*name).into(), value);
            }
        }
        for (name, value) in &request.path_parameters {
            fields.insert((*name).into(), (*value).into());
        }
        fields.insert("action".into(), self.action.into());
        Command::parse_object(Value::Object(fields)).1
    }
}

/// An HTTP response: status, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

const JSON: &str = "application/json";
const PROBLEM: &str = "application/problem+json";

impl HttpResponse {
    fn json(status: u16, body: String) -> Self {
        Self {
            status,
            content_type: JSON,
            body,
        }
    }

    /// 204: the action has no reply (`markRead`).
    pub fn no_content() -> Self {
        Self::json(204, String::new())
    }

    /// The answer to `route`: its reply as a resource, or 204 for none.
    pub fn answer(route: &Route, reply: Option<&Reply>) -> Self {
        match reply {
            None => Self::no_content(),
            Some(reply @ Reply::Conversation { .. }) if route.action != "createConversation" => Self {
                status: 200,
                ..Self::reply(reply)
            },
            Some(reply) => Self::reply(reply),
        }
    }

    /// A reply as its resource: the frame's fields without its `type`.
    pub fn reply(reply: &Reply) -> Self {
        let status = match reply {
            // Created (a conversation changed is answered by `answer` with 200).
            Reply::Conversation { .. } => 201,
            // Accepted: the broker has it; persisting and delivering follow.
            Reply::Ack { .. } => 202,
            Reply::DeviceRegistered | Reply::DeviceUnregistered => return Self::no_content(),
            Reply::Error { code, .. } => code.http_status(),
            Reply::Conversations { .. }
            | Reply::History { .. }
            | Reply::Unread { .. }
            | Reply::Presence { .. }
            | Reply::Stats { .. }
            | Reply::MessageEdited { .. }
            | Reply::MessageDeleted { .. } => 200,
        };
        if let Reply::Error {
            code,
            message,
            client_message_id,
        } = reply
        {
            return Self::problem(&Refusal {
                code: *code,
                message: message.clone(),
                client_message_id: client_message_id.clone(),
            });
        }
        let body = match serde_json::to_value(reply) {
            Ok(Value::Object(mut fields)) => {
                fields.remove("type");
                Value::Object(fields).to_string()
            }
            _ => "{}".into(),
        };
        Self::json(status, body)
    }

    /// A refusal as an RFC 9457 problem document, with the protocol's code.
    pub fn problem(refusal: &Refusal) -> Self {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Problem<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            title: &'static str,
            status: u16,
            detail: &'a str,
            code: ErrorCode,
            #[serde(skip_serializing_if = "Option::is_none")]
            client_message_id: Option<&'a ClientMessageId>,
        }
        let status = refusal.code.http_status();
        let body = serde_json::to_string(&Problem {
            kind: "about:blank",
            title: reason(status),
            status,
            detail: &refusal.message,
            code: refusal.code,
            client_message_id: refusal.client_message_id.as_ref(),
        })
        .unwrap_or_default();
        Self {
            status,
            content_type: PROBLEM,
            body,
        }
    }
}

/// The reason phrase of the statuses the API answers with (a problem's `title`).
fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(key: &str) -> &'static Route {
        Route::find(key).expect("route")
    }

    #[test]
    fn a_path_matches_its_route_and_yields_its_parameters() {
        let history = route("GET /conversations/{conversationId}/messages").key;
        assert_eq!(
            match_route(history, "GET", "/conversations/c1/messages"),
            Some(vec![("conversationId", "c1")])
        );
        assert_eq!(match_route(history, "POST", "/conversations/c1/messages"), None);
        assert_eq!(match_route(history, "GET", "/conversations//messages"), None);
        assert_eq!(match_route(history, "GET", "/conversations/c1"), None);
        assert_eq!(match_route(route("GET /unread").key, "get", "/unread/"), Some(vec![]));
        assert_eq!(match_route("ANY /unread", "DELETE", "/unread"), Some(vec![]));
    }

    #[test]
    fn path_query_body_and_idempotency_key_make_the_same_command_as_a_socket_message() {
        let request = HttpRequest {
            path_parameters: vec![("conversationId", "c1")],
            body: r#"{"content":"hi"}"#,
            idempotency_key: Some("k-1"),
            ..HttpRequest::default()
        };
        let from_http = route("POST /conversations/{conversationId}/messages")
            .command(&request)
            .expect("command");
        let from_socket =
            Command::parse(r#"{"action":"sendMessage","conversationId":"c1","content":"hi","clientMessageId":"k-1"}"#)
                .expect("command");
        assert_eq!(from_http, from_socket);

        let request = HttpRequest {
            path_parameters: vec![("conversationId", "c1")],
            query: vec![
                ("limit", "20"),
                ("before", "01JDQ4Y0000000000000000000"),
                ("other", "x"),
            ],
            ..HttpRequest::default()
        };
        assert_eq!(
            route("GET /conversations/{conversationId}/messages").command(&request),
            Command::parse(
                r#"{"action":"history","conversationId":"c1","limit":20,"before":"01JDQ4Y0000000000000000000"}"#
            )
        );
    }

    #[test]
    fn the_path_names_the_action_and_the_conversation_whatever_the_body_says() {
        let request = HttpRequest {
            path_parameters: vec![("conversationId", "c1")],
            body: r#"{"action":"typing","conversationId":"c2","messageId":"01JDQ4Y0000000000000000000"}"#,
            ..HttpRequest::default()
        };
        match route("POST /conversations/{conversationId}/read").command(&request) {
            Ok(Command::MarkRead { conversation_id, .. }) => assert_eq!(conversation_id.as_str(), "c1"),
            other => panic!("expected markRead on c1, got {other:?}"),
        }
    }

    #[test]
    fn bad_input_is_refused_with_the_protocols_codes_and_statuses() {
        let send = route("POST /conversations/{conversationId}/messages");
        let with = |body: &'static str| HttpRequest {
            path_parameters: vec![("conversationId", "c1")],
            body,
            ..HttpRequest::default()
        };
        let refused = |r: Result<Command, Refusal>| r.expect_err("refused").code;
        assert_eq!(refused(send.command(&with("not json"))), ErrorCode::InvalidJson);
        assert_eq!(refused(send.command(&with("[1]"))), ErrorCode::InvalidJson);
        assert_eq!(
            refused(send.command(&with(r#"{"content":"  "}"#))),
            ErrorCode::EmptyContent
        );
        let long = Box::leak(format!(r#"{{"content":"{}"}}"#, "x".repeat(4001)).into_boxed_str());
        assert_eq!(refused(send.command(&with(long))), ErrorCode::ContentTooLong);
        let huge = Box::leak(format!(r#"{{"content":"{}"}}"#, "x".repeat(200_000)).into_boxed_str());
        assert_eq!(refused(send.command(&with(huge))), ErrorCode::MessageTooLarge);
        let limit = HttpRequest {
            path_parameters: vec![("conversationId", "c1")],
            query: vec![("limit", "abc")],
            ..HttpRequest::default()
        };
        let refusal = route("GET /conversations/{conversationId}/messages")
            .command(&limit)
            .expect_err("refused");
        assert_eq!(refusal.code, ErrorCode::InvalidRequest);
        assert!(refusal.message.starts_with("limit:"), "{}", refusal.message);
        let differing = HttpRequest {
            idempotency_key: Some("k-2"),
            ..with(r#"{"content":"hi","clientMessageId":"k-1"}"#)
        };
        assert_eq!(refused(send.command(&differing)), ErrorCode::InvalidRequest);

        let problem = HttpResponse::problem(&Refusal::new(ErrorCode::NotAMember, "you are not a member of c1"));
        assert_eq!((problem.status, problem.content_type), (403, PROBLEM));
        let body: Value = serde_json::from_str(&problem.body).expect("json");
        assert_eq!(body["code"], "not_a_member");
        assert_eq!(body["status"], 403);
        assert_eq!(body["title"], "Forbidden");
        assert_eq!(body["detail"], "you are not a member of c1");
    }

    #[test]
    fn replies_are_resources_with_their_statuses() {
        let unread = HttpResponse::reply(&Reply::Unread {
            total: 3,
            conversations: vec![],
        });
        assert_eq!(unread.status, 200);
        assert_eq!(
            serde_json::from_str::<Value>(&unread.body).expect("json"),
            serde_json::json!({"total": 3, "conversations": []})
        );
        assert_eq!(HttpResponse::reply(&Reply::DeviceRegistered).status, 204);
        let error = HttpResponse::reply(&Refusal::new(ErrorCode::RateLimited, "slow down").to_reply());
        assert_eq!((error.status, error.content_type), (429, PROBLEM));
    }

    #[test]
    fn every_route_names_an_action_the_protocol_knows() {
        for route in ROUTES {
            let refusal = Command::parse(&format!(r#"{{"action":"{}"}}"#, route.action)).err();
            assert!(
                refusal.is_none_or(|r| r.code != ErrorCode::UnknownAction),
                "{} performs {}",
                route.key,
                route.action
            );
        }
    }
}
