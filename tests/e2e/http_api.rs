//! The HTTP API end to end: a real HTTP client against the local runtime's `/api` (the template's
//! routes, its Lambda authorizer, http-api through `lambda_http`), beside a real WebSocket client.
//! Every answer is checked against docs/openapi.yaml: its status is documented for the operation,
//! its content type matches, and its body validates against the documented schema.

use std::collections::BTreeSet;
use std::time::Duration;

use relaychat_local::runtime::Running;
use relaychat_local::template::Template;
use relaychat_schema::http::ROUTES;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::client::{Client, start_runtime, token};

const OPENAPI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");
const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");

fn openapi() -> Value {
    let text = std::fs::read_to_string(OPENAPI).expect("docs/openapi.yaml");
    serde_yaml::from_str(&text).expect("docs/openapi.yaml is YAML")
}

/// `GET /path` for every operation the document has.
fn documented_routes(doc: &Value) -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                routes.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    routes
}

#[test]
fn the_document_the_template_and_the_function_have_the_same_routes() {
    let doc = openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented = documented_routes(&doc);
    let template = Template::load(TEMPLATE.as_ref()).expect("template.yaml");
    let deployed: BTreeSet<String> = template.http.routes.keys().cloned().collect();
    let served: BTreeSet<String> = ROUTES.iter().map(|r| r.key.to_owned()).collect();
    assert_eq!(documented, deployed, "docs/openapi.yaml against template.yaml");
    assert_eq!(served, deployed, "http-api's routes against template.yaml");
    assert!(
        template.http.routes.values().all(|f| f == "http-api"),
        "{:?}",
        template.http.routes
    );
    assert_eq!(template.http.authorizer.as_deref(), Some("http-authorizer"));
    assert_eq!(template.http.authorizer_ttl_secs, 300);
}

/// A response, read whole.
struct Answer {
    status: StatusCode,
    content_type: String,
    body: Value,
    text: String,
}

/// The local HTTP API of one runtime, and the document every answer is checked against.
struct Api {
    base: String,
    http: reqwest::Client,
    doc: Value,
    /// The document as a JSON Schema resource, so `urn:relaychat:openapi#/components/...` resolves.
    registry: jsonschema::Registry<'static>,
}

impl Api {
    fn new(running: &Running) -> Self {
        let doc = openapi();
        let registry = jsonschema::Registry::new()
            .add("urn:relaychat:openapi", doc.clone())
            .and_then(|r| r.prepare())
            .expect("docs/openapi.yaml as a schema resource");
        Self {
            base: format!("http://{}/api", running.http),
            http: reqwest::Client::new(),
            doc,
            registry,
        }
    }

    /// Calls `method path` (path as the document writes it, with its parameters filled in as
    /// `values`) as the holder of `token`, and checks the answer against the document.
    async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        (template, values): (&str, &[&str]),
        query: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Answer {
        let mut path = template.to_owned();
        for value in values {
            let start = path.find('{').expect("a parameter to fill");
            let end = path[start..].find('}').expect("closed") + start;
            path.replace_range(start..=end, value);
        }
        let mut request = self.http.request(method.clone(), format!("{}{path}{query}", self.base));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("a body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: body is not JSON ({e}): {text}"))
        };
        let answer = Answer {
            status,
            content_type,
            body,
            text,
        };
        self.check(&method, template, &answer);
        answer
    }

    /// `POST /conversations/{id}/messages` with an idempotency key.
    async fn send_with_key(&self, token: &str, conversation: &str, key: &str, content: &str) -> Answer {
        let body = Some(json!({ "content": content }).to_string());
        let headers = [("idempotency-key", key)];
        self.call(
            Some(token),
            Method::POST,
            (MESSAGES, &[conversation]),
            "",
            &headers,
            body,
        )
        .await
    }

    /// The answer is one the document describes for this operation.
    fn check(&self, method: &Method, template: &str, answer: &Answer) {
        let what = format!("{method} {template} -> {}", answer.status.as_u16());
        let operation = &self.doc["paths"][template][method.as_str().to_lowercase()];
        let Some(mut response) = operation["responses"].get(answer.status.as_u16().to_string()).cloned() else {
            // API Gateway's own 404 for a path no route has is not an operation's.
            assert!(
                operation.is_null() && answer.status == StatusCode::NOT_FOUND,
                "{what}: undocumented status: {}",
                answer.text
            );
            return;
        };
        if let Some(reference) = response["$ref"].as_str() {
            let name = reference.rsplit('/').next().expect("a name");
            response = self.doc["components"]["responses"][name].clone();
        }
        let Some(content) = response["content"].as_object() else {
            assert!(
                answer.text.is_empty(),
                "{what}: documented without a body, got {}",
                answer.text
            );
            return;
        };
        let Some((_, media_type)) = content
            .iter()
            .find(|(media, _)| answer.content_type.starts_with(media.as_str()))
        else {
            panic!(
                "{what}: content type {} where the document says {:?}",
                answer.content_type,
                content.keys().collect::<Vec<_>>()
            );
        };
        let schema = media_type["schema"]["$ref"]
            .as_str()
            .map(|r| json!({ "$ref": format!("urn:relaychat:openapi{r}") }))
            .unwrap_or_else(|| media_type["schema"].clone());
        let validator = jsonschema::options()
            .with_registry(&self.registry)
            .build(&schema)
            .unwrap_or_else(|e| panic!("{what}: the document's schema does not build: {e}"));
        let errors: Vec<String> = validator.iter_errors(&answer.body).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{what}: {errors:?} in {}", answer.text);
    }
}

const CONVERSATIONS: &str = "/conversations";
const MESSAGES: &str = "/conversations/{conversationId}/messages";
const READ: &str = "/conversations/{conversationId}/read";
const MESSAGE: &str = "/conversations/{conversationId}/messages/{messageId}";
const UNREAD: &str = "/unread";
const STATS: &str = "/conversations/{conversationId}/stats";

/// Polls `GET /unread` as `token` until its total is `n`.
async fn unread_becomes(api: &Api, token: &str, n: i64) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        last = api
            .call(Some(token), Method::GET, (UNREAD, &[]), "", &[], None)
            .await
            .body;
        if last["total"].as_i64() == Some(n) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("unread never became {n}: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_create_send_read_and_page_over_http_as_over_the_socket() {
    let (running, _topics) = start_runtime().await;
    let api = Api::new(&running);
    let alice = token(&running, "alice", "Alice").await;
    let bob_token = token(&running, "bob", "Bob").await;
    let mut bob = Client::connect(&running, "bob", "Bob").await;

    let created = api
        .call(
            Some(&alice),
            Method::POST,
            (CONVERSATIONS, &[]),
            "",
            &[],
            Some(json!({"members": ["bob"], "title": "Over HTTP"}).to_string()),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["members"], json!(["alice", "bob"]));
    let conversation = created.body["conversationId"].as_str().expect("an id").to_owned();

    // Sent over HTTP: 202 with the ack, and bob's socket gets the message live.
    let sent = api.send_with_key(&alice, &conversation, "h-1", "hello over http").await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.text);
    assert_eq!(
        (sent.body["status"].as_str(), sent.body["clientMessageId"].as_str()),
        (Some("SENT"), Some("h-1"))
    );
    let message_id = sent.body["messageId"].as_str().expect("an id").to_owned();
    // A retry with the key is the same message; the key used for another one is a conflict.
    let retried = api.send_with_key(&alice, &conversation, "h-1", "hello over http").await;
    assert_eq!(
        (retried.status, retried.body["messageId"].as_str()),
        (StatusCode::ACCEPTED, Some(message_id.as_str()))
    );
    let conflict = api.send_with_key(&alice, &conversation, "h-1", "something else").await;
    assert_eq!(
        (conflict.status, conflict.body["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    let live = bob.expect("message", |v| v["type"] == "message").await;
    assert_eq!(
        (
            live["messageId"].as_str(),
            live["content"].as_str(),
            live["senderName"].as_str()
        ),
        (Some(message_id.as_str()), Some("hello over http"), Some("Alice"))
    );

    // bob's unread, his list, and the history, as persist-message stored them.
    let unread = unread_becomes(&api, &bob_token, 1).await;
    assert_eq!(
        unread["conversations"],
        json!([{"conversationId": conversation, "unread": 1}])
    );
    let listed = api
        .call(
            Some(&bob_token),
            Method::GET,
            (CONVERSATIONS, &[]),
            "?limit=10",
            &[],
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["conversations"][0]["conversationId"], conversation.as_str());
    assert_eq!(
        listed.body["conversations"][0]["lastMessage"]["messageId"],
        message_id.as_str()
    );
    let history = api
        .call(
            Some(&bob_token),
            Method::GET,
            (MESSAGES, &[&conversation]),
            "?limit=5",
            &[],
            None,
        )
        .await;
    assert_eq!(history.status, StatusCode::OK);
    assert_eq!(history.body["messages"][0]["content"], "hello over http");

    // The day's counters, once analytics (batching up to 5 s) has counted the message.
    let mut stats = Value::Null;
    for _ in 0..150 {
        stats = api
            .call(
                Some(&bob_token),
                Method::GET,
                (STATS, &[&conversation]),
                "?days=2",
                &[],
                None,
            )
            .await
            .body;
        if stats["days"][1]["messages"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stats["days"].as_array().map(Vec::len), Some(2), "{stats}");
    assert_eq!(stats["days"][1]["messages"], 1, "today's message counted: {stats}");

    // bob reads it over HTTP: alice's socket would get READ; his unread goes to 0.
    let read = api
        .call(
            Some(&bob_token),
            Method::POST,
            (READ, &[&conversation]),
            "",
            &[],
            Some(json!({"messageId": message_id}).to_string()),
        )
        .await;
    assert_eq!(read.status, StatusCode::NO_CONTENT, "{}", read.text);
    unread_becomes(&api, &bob_token, 0).await;
    // alice's history shows her message READ (the receipts update-status writes).
    let mut status = Value::Null;
    for _ in 0..150 {
        let history = api
            .call(Some(&alice), Method::GET, (MESSAGES, &[&conversation]), "", &[], None)
            .await;
        status = history.body["messages"][0]["status"].clone();
        if status == "READ" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "READ", "the sender's history carries the receipt");

    // Devices.
    let registered = api
        .call(
            Some(&bob_token),
            Method::POST,
            ("/devices", &[]),
            "",
            &[],
            Some(json!({"token": "http-device-1"}).to_string()),
        )
        .await;
    assert_eq!(registered.status, StatusCode::NO_CONTENT, "{}", registered.text);
    let gone = api
        .call(
            Some(&bob_token),
            Method::DELETE,
            ("/devices/{token}", &["http-device-1"]),
            "",
            &[],
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text);

    bob.close().await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_bad_tokens_and_bad_input_get_the_protocols_refusals() {
    let (running, _topics) = start_runtime().await;
    let api = Api::new(&running);
    let alice = token(&running, "alice", "Alice").await;
    let mallory = token(&running, "mallory", "Mallory").await;
    let created = api
        .call(
            Some(&alice),
            Method::POST,
            (CONVERSATIONS, &[]),
            "",
            &[],
            Some(json!({"members": ["bob"]}).to_string()),
        )
        .await;
    let conversation = created.body["conversationId"].as_str().expect("an id").to_owned();
    let send = |body: &str| Some(body.to_owned());

    // API Gateway's own: no header 401, a refused token 403, no route 404.
    let no_token = api.call(None, Method::GET, (UNREAD, &[]), "", &[], None).await;
    assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
    let forged = api
        .call(Some("not.a.jwt"), Method::GET, (UNREAD, &[]), "", &[], None)
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let nowhere = api
        .call(Some(&alice), Method::GET, ("/nowhere", &[]), "", &[], None)
        .await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);

    // The protocol's: problem documents with its codes.
    let cases: Vec<(&str, Answer, StatusCode, &str)> = vec![
        (
            "a stranger reads history",
            api.call(Some(&mallory), Method::GET, (MESSAGES, &[&conversation]), "", &[], None)
                .await,
            StatusCode::FORBIDDEN,
            "not_a_member",
        ),
        (
            "a stranger sends",
            api.call(
                Some(&mallory),
                Method::POST,
                (MESSAGES, &[&conversation]),
                "",
                &[],
                send(r#"{"content":"hi"}"#),
            )
            .await,
            StatusCode::FORBIDDEN,
            "not_a_member",
        ),
        (
            "no such conversation",
            api.call(Some(&alice), Method::GET, (MESSAGES, &["nope"]), "", &[], None)
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "a stranger asks for the stats",
            api.call(Some(&mallory), Method::GET, (STATS, &[&conversation]), "", &[], None)
                .await,
            StatusCode::FORBIDDEN,
            "not_a_member",
        ),
        (
            "a bad page size",
            api.call(
                Some(&alice),
                Method::GET,
                (MESSAGES, &[&conversation]),
                "?limit=abc",
                &[],
                None,
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "not JSON",
            api.call(
                Some(&alice),
                Method::POST,
                (MESSAGES, &[&conversation]),
                "",
                &[],
                send("hello"),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "empty content",
            api.call(
                Some(&alice),
                Method::POST,
                (MESSAGES, &[&conversation]),
                "",
                &[],
                send(r#"{"content":" "}"#),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "empty_content",
        ),
        (
            "content over 4,000 characters",
            api.call(
                Some(&alice),
                Method::POST,
                (MESSAGES, &[&conversation]),
                "",
                &[],
                Some(json!({"content": "x".repeat(4001)}).to_string()),
            )
            .await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "content_too_long",
        ),
        (
            "a bad idempotency key",
            api.call(
                Some(&alice),
                Method::POST,
                (MESSAGES, &[&conversation]),
                "",
                &[("idempotency-key", "not a token")],
                send(r#"{"content":"hi"}"#),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "a bad message id to read up to",
            api.call(
                Some(&alice),
                Method::POST,
                (READ, &[&conversation]),
                "",
                &[],
                send(r#"{"messageId":"x"}"#),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (what, answer, status, code) in cases {
        assert_eq!(answer.status, status, "{what}: {}", answer.text);
        assert_eq!(answer.body["code"], code, "{what}: {}", answer.text);
        assert_eq!(answer.body["status"], status.as_u16(), "{what}");
    }

    // The send budget is the user's over HTTP: 10 a second, then 429.
    let mut statuses = Vec::new();
    // Enough that a burst crossing one window's end still runs out in the next.
    for i in 0..25 {
        let answer = api
            .call(
                Some(&alice),
                Method::POST,
                (MESSAGES, &[&conversation]),
                "",
                &[],
                Some(json!({"content": format!("burst {i}")}).to_string()),
            )
            .await;
        statuses.push(answer.status.as_u16());
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(answer.body["code"], "rate_limited");
            break;
        }
    }
    assert!(
        statuses.contains(&429) && statuses.iter().filter(|s| **s == 202).count() <= 20,
        "at most 10 sends a second (two windows at most), then 429: {statuses:?}"
    );
    running.stop().await;
}

/// Polls history as `token` until its newest message satisfies `want`.
async fn newest_becomes(api: &Api, token: &str, conversation: &str, want: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        last = api
            .call(
                Some(token),
                Method::GET,
                (MESSAGES, &[conversation]),
                "?limit=1",
                &[],
                None,
            )
            .await
            .body;
        if want(&last["messages"][0]) {
            return last["messages"][0].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the newest message never became as wanted: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_edits_and_deletes_over_http_and_members_see_it_live_and_in_history() {
    let (running, _topics) = start_runtime().await;
    let api = Api::new(&running);
    let (alice, bob_token) = (
        token(&running, "alice", "Alice").await,
        token(&running, "bob", "Bob").await,
    );
    let mut bob = Client::connect(&running, "bob", "Bob").await;
    let conversation = bob.create_conversation(&["alice", "carol"]).await;
    let sent = api.send_with_key(&alice, &conversation, "e-1", "helo").await;
    let id = sent.body["messageId"].as_str().expect("an id").to_owned();
    bob.expect("the message", |v| {
        v["type"] == "message" && v["messageId"] == id.as_str()
    })
    .await;
    newest_becomes(&api, &bob_token, &conversation, |m| m["messageId"] == id.as_str()).await;
    let edit = |token: &str, text: &str| {
        let body = Some(json!({ "content": text }).to_string());
        let (api, token, conversation, id) = (&api, token.to_owned(), conversation.clone(), id.clone());
        async move {
            api.call(
                Some(&token),
                Method::PATCH,
                (MESSAGE, &[&conversation, &id]),
                "",
                &[],
                body,
            )
            .await
        }
    };

    // Refusals: another member, bad text, an unknown message.
    let not_hers = edit(&bob_token, "hijacked").await;
    assert_eq!(
        (not_hers.status, not_hers.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let empty = edit(&alice, "  ").await;
    assert_eq!(empty.body["code"], "empty_content", "{}", empty.text);
    let unknown = api
        .call(
            Some(&alice),
            Method::DELETE,
            (MESSAGE, &[&conversation, "01JDQ3ZK6M0000000000000000"]),
            "",
            &[],
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);

    // alice edits: bob's socket gets the frame, history the text and the time.
    let edited = edit(&alice, "hello").await;
    assert_eq!(
        (edited.status, edited.body["content"].as_str()),
        (StatusCode::OK, Some("hello"))
    );
    let live = bob.expect("the edit", |v| v["type"] == "messageEdited").await;
    assert_eq!(
        (
            live["messageId"].as_str(),
            live["content"].as_str(),
            live["senderId"].as_str()
        ),
        (Some(id.as_str()), Some("hello"), Some("alice"))
    );
    let stored = newest_becomes(&api, &bob_token, &conversation, |m| m["content"] == "hello").await;
    assert!(stored["editedAt"].is_string(), "{stored}");

    // alice deletes: a tombstone everywhere; deleting again answers the same; editing conflicts.
    let path = [conversation.as_str(), id.as_str()];
    let delete = || api.call(Some(&alice), Method::DELETE, (MESSAGE, &path), "", &[], None);
    let deleted = delete().await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    let live = bob.expect("the deletion", |v| v["type"] == "messageDeleted").await;
    assert_eq!(live["messageId"], id.as_str());
    let tombstone = newest_becomes(&api, &bob_token, &conversation, |m| m["deletedAt"].is_string()).await;
    assert_eq!(tombstone["content"], "", "{tombstone}");
    let listed = api
        .call(Some(&bob_token), Method::GET, (CONVERSATIONS, &[]), "", &[], None)
        .await;
    assert_eq!(
        listed.body["conversations"][0]["lastMessage"]["content"], "",
        "{}",
        listed.text
    );
    let again = delete().await;
    assert_eq!(
        (
            again.status,
            again.body["deletedAt"].as_str().map(|t| t[..19].to_owned())
        ),
        (
            StatusCode::OK,
            deleted.body["deletedAt"].as_str().map(|t| t[..19].to_owned())
        )
    );
    let late = edit(&alice, "too late").await;
    assert_eq!(
        (late.status, late.body["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );

    bob.close().await;
    running.stop().await;
}
