//! Reads what the local runtime emulates from template.yaml: every Kafka event-source mapping
//! (`AWS::Lambda::EventSourceMapping` or a SAM `MSK` / `SelfManagedKafka` event) and every
//! WebSocket route with the function behind it. The template's `AWS::LanguageExtensions` parts
//! (`Fn::ForEach`, `!FindInMap`) are expanded first ([`expand`]). CloudFormation intrinsics are
//! then resolved as far as the local runtime needs: `!Ref` / `!Sub` (its variable map included)
//! to parameter defaults, `!GetAtt`/`${X.Arn}` to the resource, `!If` to the branch that makes
//! sense locally (a `kafka://` destination, the MSK variant of a mapping). Short (`!Sub`) and
//! long (`Fn::Sub:`) forms alike.

mod expand;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_yaml::Value;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("could not read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("template.yaml is not valid YAML")]
    Yaml(#[from] serde_yaml::Error),
    #[error("template.yaml: {0}")]
    Shape(String),
    #[error("template.yaml (AWS::LanguageExtensions): {0}")]
    LanguageExtensions(String),
}

/// Where an event-source mapping starts reading a group that has no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    TrimHorizon,
    Latest,
}

/// One Kafka event-source mapping, as the template declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The template's logical id of the mapping (or `<function>.<event>` for SAM events).
    pub id: String,
    /// The function's binary (its crate), e.g. `persist-message`.
    pub function: String,
    pub topics: Vec<String>,
    pub consumer_group: String,
    pub starting_position: StartingPosition,
    pub batch_size: usize,
    pub batching_window_ms: u64,
    pub report_batch_item_failures: bool,
    pub bisect_on_error: bool,
    /// -1: retry until the record expires (here: forever).
    pub max_retries: i64,
    /// The on-failure destination's topic (`kafka://<topic>`), if the template names one.
    pub on_failure_topic: Option<String>,
    pub timeout_secs: u64,
}

/// The WebSocket API: route key → function binary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebSocketApi {
    pub route_selection: RouteSelection,
    pub routes: BTreeMap<String, String>,
}

/// The HTTP API: SAM `HttpApi` events (route key `GET /path/{param}` → function binary) and the
/// API's default Lambda authorizer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpApi {
    pub routes: BTreeMap<String, String>,
    /// The authorizer's function binary, if the API has a default authorizer.
    pub authorizer: Option<String>,
    /// `Identity.ReauthorizeEvery` (seconds; API Gateway's default 300).
    pub authorizer_ttl_secs: u64,
}

/// A route selection expression of the form `$request.body.<field>[.<field>...]`: the path of the
/// JSON field whose value is the route key. The only form a JSON WebSocket API uses; anything else
/// is refused when the template is read rather than routed wrongly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSelection {
    pub path: Vec<String>,
}

impl Default for RouteSelection {
    /// API Gateway's usual `$request.body.action`.
    fn default() -> Self {
        Self {
            path: vec!["action".into()],
        }
    }
}

impl RouteSelection {
    pub fn parse(expression: &str) -> Result<Self, TemplateError> {
        let path: Vec<String> = expression
            .strip_prefix("$request.body.")
            .map(|p| p.split('.').map(str::to_owned).collect())
            .unwrap_or_default();
        if path.is_empty() || path.iter().any(|f| f.is_empty()) {
            return Err(TemplateError::Shape(format!(
                "RouteSelectionExpression {expression:?}: the local gateway routes on $request.body.<field> only"
            )));
        }
        Ok(Self { path })
    }

    /// The route key a message body selects, if it is JSON with a string at the path.
    pub fn route_key<'a>(&self, body: &'a serde_json::Value) -> Option<&'a str> {
        self.path.iter().try_fold(body, |v, field| v.get(field))?.as_str()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub mappings: Vec<Mapping>,
    pub websocket: WebSocketApi,
    pub http: HttpApi,
    /// Every function binary the template deploys.
    pub functions: Vec<String>,
    /// Each function binary's `Timeout` in seconds (its own, else the Globals').
    pub timeouts: BTreeMap<String, u64>,
}

struct Ctx<'a> {
    resources: &'a serde_yaml::Mapping,
    params: HashMap<String, String>,
    globals_timeout: u64,
}

impl Template {
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut doc: Value = serde_yaml::from_str(text)?;
        expand::expand(&mut doc)?;
        let resources = doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| TemplateError::Shape("no Resources".into()))?;
        let params = doc
            .get("Parameters")
            .and_then(Value::as_mapping)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), scalar(v.get("Default")?)?)))
                    .collect()
            })
            .unwrap_or_default();
        let globals_timeout = doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Timeout"))
            .and_then(Value::as_u64)
            .unwrap_or(3);
        let ctx = Ctx {
            resources,
            params,
            globals_timeout,
        };
        let mut template = Template {
            mappings: Vec::new(),
            websocket: WebSocketApi::default(),
            http: HttpApi::default(),
            functions: Vec::new(),
            timeouts: BTreeMap::new(),
        };
        for (id, resource) in resources {
            let id = id.as_str().unwrap_or_default();
            let kind = resource.get("Type").and_then(Value::as_str).unwrap_or_default();
            let props = resource.get("Properties").cloned().unwrap_or(Value::Null);
            match kind {
                "AWS::Serverless::Function" => {
                    template.functions.push(ctx.binary(id)?);
                    template.timeouts.insert(ctx.binary(id)?, ctx.timeout(id));
                    if let Some(events) = props.get("Events").and_then(Value::as_mapping) {
                        for (name, event) in events {
                            let ty = event.get("Type").and_then(Value::as_str).unwrap_or_default();
                            let p = event.get("Properties").cloned().unwrap_or(Value::Null);
                            if ty == "MSK" || ty == "SelfManagedKafka" {
                                let name = format!("{id}.{}", name.as_str().unwrap_or_default());
                                template.mappings.push(ctx.mapping(&name, id, &p)?);
                            } else if ty == "HttpApi" {
                                let method = p
                                    .get("Method")
                                    .and_then(|m| ctx.resolve(m))
                                    .unwrap_or_else(|| "ANY".into());
                                let path = p.get("Path").and_then(|m| ctx.resolve(m)).ok_or_else(|| {
                                    TemplateError::Shape(format!("{id}: an HttpApi event without a Path"))
                                })?;
                                let key = format!("{} {path}", method.to_ascii_uppercase());
                                template.http.routes.insert(key, ctx.binary(id)?);
                            }
                        }
                    }
                }
                "AWS::Lambda::EventSourceMapping" => {
                    // Locally the broker is one: take the MSK variant, skip its self-managed twin.
                    if resource
                        .get("Condition")
                        .and_then(Value::as_str)
                        .is_some_and(|c| c.contains("SelfManaged"))
                    {
                        continue;
                    }
                    let function = props
                        .get("FunctionName")
                        .and_then(|f| ctx.resource_name(f))
                        .ok_or_else(|| {
                            TemplateError::Shape(format!("{id}: FunctionName must name a function of the template"))
                        })?;
                    template.mappings.push(ctx.mapping(id, &function, &props)?);
                }
                "AWS::Serverless::HttpApi" => {
                    let auth = props.get("Auth");
                    let default = auth
                        .and_then(|a| a.get("DefaultAuthorizer"))
                        .and_then(|d| ctx.resolve(d));
                    if let Some(name) = default {
                        let authorizer = auth
                            .and_then(|a| a.get("Authorizers"))
                            .and_then(|a| a.get(name.as_str()))
                            .ok_or_else(|| TemplateError::Shape(format!("{id}: no authorizer {name}")))?;
                        let function = authorizer
                            .get("FunctionArn")
                            .and_then(|f| ctx.resource_name(f))
                            .ok_or_else(|| {
                                TemplateError::Shape(format!(
                                    "{id}: authorizer {name} must name a function of the template"
                                ))
                            })?;
                        template.http.authorizer = Some(function);
                        template.http.authorizer_ttl_secs = authorizer
                            .get("Identity")
                            .and_then(|i| i.get("ReauthorizeEvery"))
                            .and_then(|r| ctx.resolve(r))
                            .and_then(|r| r.parse().ok())
                            .unwrap_or(300);
                    }
                }
                "AWS::ApiGatewayV2::Api" => {
                    if let Some(sel) = props.get("RouteSelectionExpression").and_then(|v| ctx.resolve(v)) {
                        template.websocket.route_selection = RouteSelection::parse(&sel)?;
                    }
                }
                "AWS::ApiGatewayV2::Route" => {
                    let key = props.get("RouteKey").and_then(|v| ctx.resolve(v)).unwrap_or_default();
                    let function = props
                        .get("Target")
                        .and_then(|t| ctx.resolve(t))
                        .and_then(|t| {
                            let id = t.strip_prefix("integrations/")?;
                            Some(id.trim_start_matches("${").trim_end_matches('}').to_owned())
                        })
                        .and_then(|integration| ctx.integration_function(&integration))
                        .ok_or_else(|| TemplateError::Shape(format!("{id}: route {key} has no Lambda integration")))?;
                    template.websocket.routes.insert(key, function);
                }
                _ => {}
            }
        }
        template.mappings.sort_by(|a, b| a.id.cmp(&b.id));
        template.functions.sort();
        Ok(template)
    }
}

impl Ctx<'_> {
    /// Resolves a value to a string: plain scalars, `!Ref` to parameters, `!Sub` with its
    /// variables and parameters, `!If` to its first branch.
    fn resolve(&self, v: &Value) -> Option<String> {
        if let Some(name) = call(v, "Ref") {
            let name = scalar(name)?;
            return Some(self.params.get(&name).cloned().unwrap_or(name));
        }
        if let Some(args) = call(v, "Sub") {
            return self.sub(args);
        }
        if let Some(branches) = call(v, "If") {
            return branches.as_sequence()?.get(1).and_then(|b| self.resolve(b));
        }
        scalar(v)
    }

    /// `!Sub text` or `!Sub [text, {Var: value}]`: each `${Var}` its (resolved) value, else the
    /// parameter's default; what neither names stays as written.
    fn sub(&self, args: &Value) -> Option<String> {
        let (text, vars) = match args {
            Value::Sequence(parts) => (scalar(parts.first()?)?, parts.get(1).and_then(Value::as_mapping)),
            other => (scalar(other)?, None),
        };
        let vars: HashMap<String, String> = vars
            .into_iter()
            .flatten()
            .filter_map(|(name, value)| Some((scalar(name)?, self.resolve(value)?)))
            .collect();
        Some(self.substitute(&text, &vars))
    }

    fn substitute(&self, text: &str, vars: &HashMap<String, String>) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find('}') else { break };
            let name = &rest[start + 2..start + end];
            match vars.get(name).or_else(|| self.params.get(name)) {
                Some(v) => out.push_str(v),
                None => out.push_str(&rest[start..start + end + 1]),
            }
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// The logical id a `!Ref X` / `!GetAtt X.Arn` (or `[X, Arn]`) names.
    fn resource_name(&self, v: &Value) -> Option<String> {
        let id = if let Some(name) = call(v, "Ref") {
            scalar(name)?
        } else if let Some(target) = call(v, "GetAtt") {
            let dotted = scalar(target).or_else(|| scalar(target.as_sequence()?.first()?))?;
            dotted.split('.').next()?.to_owned()
        } else {
            scalar(v)?
        };
        self.binary(&id).ok()
    }

    /// A function's binary name (its `BuildProperties.Binary`).
    fn binary(&self, id: &str) -> Result<String, TemplateError> {
        self.resources
            .get(id)
            .and_then(|r| r.get("Metadata"))
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|b| b.get("Binary"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| TemplateError::Shape(format!("{id}: no Metadata.BuildProperties.Binary")))
    }

    fn timeout(&self, function_id: &str) -> u64 {
        self.resources
            .get(function_id)
            .and_then(|r| r.get("Properties"))
            .and_then(|p| p.get("Timeout"))
            .and_then(Value::as_u64)
            .unwrap_or(self.globals_timeout)
    }

    /// The function behind an integration (`IntegrationUri: !Sub "...${Fn.Arn}/invocations"`).
    fn integration_function(&self, integration: &str) -> Option<String> {
        let uri = self
            .resources
            .get(integration)?
            .get("Properties")?
            .get("IntegrationUri")?;
        let text = match call(uri, "Sub") {
            Some(args) => scalar(args).or_else(|| scalar(args.as_sequence()?.first()?))?,
            None => scalar(uri)?,
        };
        let start = text.find("functions/${")? + "functions/${".len();
        let id = text[start..].split(['.', '}']).next()?;
        self.binary(id).ok()
    }

    fn mapping(&self, id: &str, function_id_or_binary: &str, p: &Value) -> Result<Mapping, TemplateError> {
        let (function, timeout_secs) = match self.binary(function_id_or_binary) {
            Ok(binary) => (binary, self.timeout(function_id_or_binary)),
            Err(_) => {
                let function_id = self.function_id_of(function_id_or_binary);
                (
                    function_id_or_binary.to_owned(),
                    function_id.map(|f| self.timeout(&f)).unwrap_or(self.globals_timeout),
                )
            }
        };
        let topics: Vec<String> = p
            .get("Topics")
            .and_then(Value::as_sequence)
            .map(|s| s.iter().filter_map(|t| self.resolve(t)).collect())
            .unwrap_or_default();
        if topics.is_empty() {
            return Err(TemplateError::Shape(format!("{id}: no Topics")));
        }
        let group = p
            .get("AmazonManagedKafkaEventSourceConfig")
            .or_else(|| p.get("SelfManagedKafkaEventSourceConfig"))
            .and_then(|c| c.get("ConsumerGroupId"))
            .or_else(|| p.get("ConsumerGroupId"))
            .and_then(|g| self.resolve(g))
            .unwrap_or_else(|| format!("relaychat-{function}"));
        let starting_position = match p.get("StartingPosition").and_then(|s| self.resolve(s)).as_deref() {
            Some("LATEST") => StartingPosition::Latest,
            _ => StartingPosition::TrimHorizon,
        };
        let number = |name: &str, default: f64| {
            p.get(name)
                .and_then(|v| self.resolve(v))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(default)
        };
        let on_failure_topic = p
            .get("DestinationConfig")
            .and_then(|d| d.get("OnFailure"))
            .and_then(|o| o.get("Destination"))
            .and_then(kafka_destination);
        Ok(Mapping {
            id: id.to_owned(),
            topics,
            consumer_group: group,
            starting_position,
            batch_size: number("BatchSize", 100.0).max(1.0) as usize,
            batching_window_ms: (number("MaximumBatchingWindowInSeconds", 0.0) * 1000.0) as u64,
            report_batch_item_failures: p
                .get("FunctionResponseTypes")
                .and_then(Value::as_sequence)
                .is_some_and(|s| {
                    s.iter()
                        .any(|t| scalar(t).as_deref() == Some("ReportBatchItemFailures"))
                }),
            bisect_on_error: p
                .get("BisectBatchOnFunctionError")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            max_retries: number("MaximumRetryAttempts", -1.0) as i64,
            on_failure_topic,
            timeout_secs,
            function,
        })
    }

    fn function_id_of(&self, binary: &str) -> Option<String> {
        self.resources.iter().find_map(|(k, _)| {
            let id = k.as_str()?;
            (self.binary(id).ok()? == binary).then(|| id.to_owned())
        })
    }
}

/// A `kafka://topic` destination anywhere in the value (both branches of an `!If` or `Fn::If:` are
/// looked at).
fn kafka_destination(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => s.strip_prefix("kafka://").map(str::to_owned),
        Value::Tagged(t) => kafka_destination(&t.value),
        Value::Sequence(items) => items.iter().find_map(kafka_destination),
        Value::Mapping(long_form) => long_form.values().find_map(kafka_destination),
        _ => None,
    }
}

/// The argument of the intrinsic `name` (`Ref`, `Sub`, `FindInMap`, ...) if that is what `v` is,
/// in either spelling: `!Sub x` or `{"Fn::Sub": x}`, `!Ref x` or `{Ref: x}`.
fn call<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Tagged(t) if t.tag == name => Some(&t.value),
        Value::Mapping(m) if m.len() == 1 => {
            let (key, arg) = m.iter().next()?;
            let long = key.as_str()?;
            let matches = match name {
                "Ref" => long == "Ref",
                _ => long.strip_prefix("Fn::") == Some(name),
            };
            matches.then_some(arg)
        }
        _ => None,
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relaychat_adapters::dynamo::tables::{CONNECTIONS_BY_USER, MEMBERSHIPS_BY_CONVERSATION, TABLES};
    use relaychat_schema::TopicKind;

    fn repo_template() -> (Template, Value) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let text = std::fs::read_to_string(&path).expect("template.yaml");
        (
            Template::parse(&text).expect("template parses"),
            serde_yaml::from_str(&text).expect("YAML"),
        )
    }

    #[test]
    fn every_function_has_its_alarms_and_the_dashboard_shows_every_metric() {
        use relaychat_adapters::telemetry::METRICS_NAMESPACE;
        use relaychat_core::measure;
        let (_, doc) = repo_template();
        let names = |v: &Value| -> std::collections::BTreeSet<String> {
            v.as_sequence()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect()
        };
        let ids = &doc["Mappings"]["Functions"];
        let id_of = |row: &str| ids[row]["Id"].as_str().unwrap().to_owned();
        let functions: std::collections::BTreeSet<String> = doc["Resources"]
            .as_mapping()
            .unwrap()
            .iter()
            .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
            .map(|(k, _)| k.as_str().unwrap().to_owned())
            .collect();
        // Errors and throttles: every function.
        let rows = names(&doc["Resources"]["Fn::ForEach::FunctionAlarms"][1]);
        let alarmed: std::collections::BTreeSet<String> = rows.iter().map(|r| id_of(r)).collect();
        assert_eq!(alarmed, functions);
        // Dead letters and lag: every function behind an event source mapping.
        let consumers: std::collections::BTreeSet<String> = doc["Mappings"]["KafkaConsumers"]
            .as_mapping()
            .unwrap()
            .values()
            .map(|c| c["Function"].as_str().unwrap().to_owned())
            .collect();
        let rows = names(&doc["Resources"]["Fn::ForEach::ConsumerAlarms"][1]);
        let alarmed: std::collections::BTreeSet<String> = rows.iter().map(|r| id_of(r)).collect();
        assert_eq!(alarmed, consumers);
        let dead = &doc["Resources"]["Fn::ForEach::ConsumerAlarms"][2]["${Function}DeadLettersAlarm"]["Properties"];
        assert_eq!(
            (dead["Namespace"].as_str(), dead["MetricName"].as_str()),
            (Some(METRICS_NAMESPACE), Some(measure::RECORDS_DEAD_LETTERED))
        );
        assert_eq!(
            dead["Dimensions"][0]["Name"], "Function",
            "the dimension the functions write"
        );
        // What a mapping gives up on after its retries (to its destination, or dropped): every
        // mapping publishes the counts, and each has its alarm on them, under either Kafka source.
        let rows: std::collections::BTreeSet<String> = doc["Mappings"]["KafkaConsumers"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names(&doc["Resources"]["Fn::ForEach::KafkaMappings"][1]), rows);
        assert_eq!(names(&doc["Resources"]["Fn::ForEach::MappingAlarms"][1]), rows);
        for variant in ["${Consumer}MskMapping", "${Consumer}SelfManagedMapping"] {
            let metrics =
                &doc["Resources"]["Fn::ForEach::KafkaMappings"][2][variant]["Properties"]["MetricsConfig"]["Metrics"];
            assert!(names(metrics).contains("EventCount"), "{variant}");
        }
        let gave_up = &doc["Resources"]["Fn::ForEach::MappingAlarms"][2]["${Consumer}GaveUpAlarm"]["Properties"];
        let queries = gave_up["Metrics"].as_sequence().unwrap();
        let read: std::collections::BTreeSet<String> = queries
            .iter()
            .filter_map(|q| q["MetricStat"]["Metric"]["MetricName"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(
            read,
            ["DroppedEventCount", "OnFailureDestinationDeliveredEventCount"]
                .map(String::from)
                .into()
        );
        for q in queries.iter().filter(|q| q["MetricStat"].is_mapping()) {
            let dimension = &q["MetricStat"]["Metric"]["Dimensions"][0];
            assert_eq!(dimension["Name"], "EventSourceMappingUUID");
            let Value::Tagged(choice) = &dimension["Value"] else {
                panic!("the mapping of the Kafka source in use: !If")
            };
            let text = serde_json::to_string(&serde_json::to_value(&choice.value).unwrap()).unwrap();
            assert!(
                text.contains("UseMsk")
                    && text.contains("${Consumer}MskMapping")
                    && text.contains("${Consumer}SelfManagedMapping"),
                "{text}"
            );
        }
        assert_eq!(
            gave_up["Threshold"].as_u64(),
            Some(1),
            "one record given up is worth a look"
        );

        // The dashboard: valid JSON once !Sub has filled it in, showing every metric.
        let Value::Tagged(body) = &doc["Resources"]["Dashboard"]["Properties"]["DashboardBody"] else {
            panic!("DashboardBody is a !Sub")
        };
        let mut json = body.value.as_str().unwrap().to_owned();
        while let Some(start) = json.find("${") {
            let end = json[start..].find('}').unwrap() + start;
            json.replace_range(start..=end, "x");
        }
        let dashboard: serde_json::Value = serde_json::from_str(&json).expect("the dashboard is JSON");
        let text = dashboard.to_string();
        for metric in measure::ALL {
            assert!(text.contains(metric), "the dashboard does not show {metric}");
        }
    }

    #[test]
    fn every_function_is_wired_as_the_code_expects() {
        let (t, _) = repo_template();
        let expected = [
            "analytics",
            "deliver-message",
            "http-api",
            "http-authorizer",
            "kafka-topics",
            "persist-message",
            "push-notification",
            "relay-typing",
            "update-presence",
            "update-status",
            "ws-connect",
            "ws-disconnect",
            "ws-message",
        ];
        assert_eq!(t.functions, expected);
        let consumes = |f: &str| -> Vec<String> {
            let mut topics: Vec<String> = t
                .mappings
                .iter()
                .filter(|m| m.function == f)
                .flat_map(|m| m.topics.clone())
                .collect();
            topics.sort();
            topics
        };
        let name = |k: TopicKind| k.spec().default_name.to_owned();
        assert_eq!(consumes("persist-message"), vec![name(TopicKind::ChatMessages)]);
        assert_eq!(consumes("deliver-message"), vec![name(TopicKind::ChatMessages)]);
        assert_eq!(
            consumes("analytics"),
            vec![name(TopicKind::AnalyticsEvents), name(TopicKind::ChatMessages)]
        );
        assert_eq!(consumes("update-status"), vec![name(TopicKind::MessageStatusEvents)]);
        assert_eq!(consumes("relay-typing"), vec![name(TopicKind::TypingEvents)]);
        assert_eq!(consumes("push-notification"), vec![name(TopicKind::Notifications)]);
        assert_eq!(consumes("update-presence"), vec![name(TopicKind::PresenceEvents)]);
        for m in &t.mappings {
            assert!(
                m.report_batch_item_failures,
                "{}: the functions answer with batch item failures",
                m.id
            );
            assert_eq!(
                m.on_failure_topic.as_deref(),
                Some(format!("{}-dlq", m.function).as_str()),
                "{}",
                m.id
            );
            assert!(
                m.max_retries >= 0 && m.bisect_on_error,
                "{}: bounded retries, bisect",
                m.id
            );
        }
        // The delivery path does not wait for batches; typing starts from the latest.
        let deliver = t.mappings.iter().find(|m| m.function == "deliver-message").unwrap();
        assert_eq!(deliver.batching_window_ms, 0);
        let typing = t.mappings.iter().find(|m| m.function == "relay-typing").unwrap();
        assert_eq!(typing.starting_position, StartingPosition::Latest);
    }

    /// The template's loops (`Fn::ForEach`) give what it held when every mapping and route was
    /// written out: same logical ids (a renamed one would be replaced in a deployed stack), same
    /// consumer groups, topics, batching, destinations, routes and timeouts.
    #[test]
    fn the_loops_read_as_the_written_out_template_did() {
        use StartingPosition::{Latest, TrimHorizon};
        let (t, mut doc) = repo_template();
        // (consumer, function, topic, group, starting position, batch size, window ms, DLQ topic)
        #[rustfmt::skip]
        let consumers = [
            ("PersistMessage", "persist-message", "chat-messages", "persist-message", TrimHorizon, 100, 0, "persist-message-dlq"),
            ("DeliverMessage", "deliver-message", "chat-messages", "deliver-message", TrimHorizon, 100, 0, "deliver-message-dlq"),
            ("AnalyticsChatMessages", "analytics", "chat-messages", "analytics-chat-messages", TrimHorizon, 500, 5000, "analytics-dlq"),
            ("AnalyticsEvents", "analytics", "analytics-events", "analytics-analytics-events", TrimHorizon, 500, 5000, "analytics-dlq"),
            ("UpdateStatus", "update-status", "message-status-events", "update-status", TrimHorizon, 100, 0, "update-status-dlq"),
            ("RelayTyping", "relay-typing", "typing-events", "relay-typing", Latest, 100, 0, "relay-typing-dlq"),
            ("PushNotification", "push-notification", "notifications", "push-notification", TrimHorizon, 100, 1000, "push-notification-dlq"),
            ("UpdatePresence", "update-presence", "presence-events", "update-presence", TrimHorizon, 100, 0, "update-presence-dlq"),
        ];
        let mut want: Vec<Mapping> = consumers
            .iter()
            .map(
                |&(consumer, function, topic, group, starting_position, batch_size, window, dlq)| Mapping {
                    id: format!("{consumer}MskMapping"),
                    function: function.into(),
                    topics: vec![topic.into()],
                    consumer_group: format!("relaychat-{group}"),
                    starting_position,
                    batch_size,
                    batching_window_ms: window,
                    report_batch_item_failures: true,
                    bisect_on_error: true,
                    max_retries: 10,
                    on_failure_topic: Some(dlq.into()),
                    timeout_secs: 30,
                },
            )
            .collect();
        want.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(t.mappings, want);

        let actions = [
            ("Default", "$default"),
            ("CreateConversation", "createConversation"),
            ("ListConversations", "listConversations"),
            ("SendMessage", "sendMessage"),
            ("Typing", "typing"),
            ("MarkRead", "markRead"),
            ("History", "history"),
            ("RegisterDevice", "registerDevice"),
        ];
        let mut routes: BTreeMap<String, String> = actions
            .iter()
            .map(|(_, key)| (key.to_string(), "ws-message".to_owned()))
            .collect();
        routes.insert("$connect".into(), "ws-connect".into());
        routes.insert("$disconnect".into(), "ws-disconnect".into());
        assert_eq!(t.websocket.routes, routes);

        let timeouts: BTreeMap<String, u64> = t
            .functions
            .iter()
            .map(|f| {
                let secs = match f.as_str() {
                    "http-authorizer" => 5,
                    "http-api" => 10,
                    // A CloudFormation request: applying the topics gives up after 60 s.
                    "kafka-topics" => 120,
                    ws if ws.starts_with("ws-") => 10,
                    _ => 30,
                };
                (f.clone(), secs)
            })
            .collect();
        assert_eq!(t.timeouts, timeouts);

        expand::expand(&mut doc).expect("expands");
        let mut ids: Vec<(String, &str)> = Vec::new();
        for (consumer, ..) in consumers {
            ids.push((format!("{consumer}MskMapping"), "AWS::Lambda::EventSourceMapping"));
            ids.push((
                format!("{consumer}SelfManagedMapping"),
                "AWS::Lambda::EventSourceMapping",
            ));
        }
        for (action, _) in actions {
            ids.push((format!("{action}Route"), "AWS::ApiGatewayV2::Route"));
            ids.push((format!("{action}RouteResponse"), "AWS::ApiGatewayV2::RouteResponse"));
            ids.push((format!("WsMessage{action}Permission"), "AWS::Lambda::Permission"));
        }
        for (id, kind) in ids {
            assert_eq!(doc["Resources"][id.as_str()]["Type"], kind, "{id}");
        }
        let route = &doc["Resources"]["SendMessageRouteResponse"]["Properties"]["RouteId"];
        assert_eq!(
            *route,
            serde_yaml::from_str::<Value>("!Ref SendMessageRoute").expect("YAML")
        );
    }

    /// `!Sub` with a variable map, and the long spellings (`Fn::Sub:`, `Ref:`), resolve as the
    /// short ones do.
    #[test]
    fn sub_resolves_its_variables_in_either_spelling() {
        let t = Template::parse(
            r#"
Parameters:
  Prefix: {Type: String, Default: "dev-"}
  Topic: {Type: String, Default: chat-messages}
Resources:
  F:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: persist-message}}
  Short:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !Ref F
      Topics: [!Ref Topic]
      AmazonManagedKafkaEventSourceConfig:
        ConsumerGroupId: !Sub ["${Prefix}${Group}-${Nested}", {Group: persist, Nested: !Ref Topic}]
  Long:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: {Ref: F}
      Topics: [{Ref: Topic}]
      AmazonManagedKafkaEventSourceConfig:
        ConsumerGroupId: {"Fn::Sub": ["${Prefix}${Group}", {Group: {"Fn::Sub": "long-${Topic}"}}]}
"#,
        )
        .expect("parses");
        let groups: Vec<(&str, &str, &[String])> = t
            .mappings
            .iter()
            .map(|m| (m.id.as_str(), m.consumer_group.as_str(), m.topics.as_slice()))
            .collect();
        let topics = ["chat-messages".to_owned()];
        assert_eq!(
            groups,
            [
                ("Long", "dev-long-chat-messages", &topics[..]),
                ("Short", "dev-persist-chat-messages", &topics[..])
            ]
        );
    }

    #[test]
    fn the_route_selection_expression_is_honoured_or_refused() {
        let nested = RouteSelection::parse("$request.body.meta.kind").unwrap();
        let body = serde_json::json!({"action": "sendMessage", "meta": {"kind": "typing"}});
        assert_eq!(nested.route_key(&body), Some("typing"));
        assert_eq!(RouteSelection::default().route_key(&body), Some("sendMessage"));
        assert_eq!(nested.route_key(&serde_json::json!({"meta": {"kind": 3}})), None);
        for unsupported in [
            "$request.body",
            "$request.body.",
            "${request.body.action}",
            "action",
            "",
        ] {
            assert!(RouteSelection::parse(unsupported).is_err(), "{unsupported}");
        }
    }

    #[test]
    fn every_route_of_the_protocol_is_present() {
        let (t, _) = repo_template();
        assert_eq!(
            t.websocket.route_selection,
            RouteSelection::parse("$request.body.action").unwrap()
        );
        let mut expected: Vec<(&str, &str)> = vec![
            ("$connect", "ws-connect"),
            ("$disconnect", "ws-disconnect"),
            ("$default", "ws-message"),
        ];
        for action in [
            "createConversation",
            "listConversations",
            "sendMessage",
            "typing",
            "markRead",
            "history",
            "registerDevice",
        ] {
            expected.push((action, "ws-message"));
        }
        for (route, function) in expected {
            assert_eq!(
                t.websocket.routes.get(route).map(String::as_str),
                Some(function),
                "route {route}"
            );
        }
        assert_eq!(t.websocket.routes.len(), 10);
    }

    /// `sam local invoke --env-vars` sets only what the template declares: every variable make dev
    /// writes for it is declared (in Globals, or by the functions that need it).
    #[test]
    fn sam_local_can_set_every_variable_make_dev_writes_for_it() {
        let (_, doc) = repo_template();
        let mut declared = std::collections::BTreeSet::new();
        let mut collect = |vars: &Value| {
            for k in vars.as_mapping().into_iter().flat_map(|m| m.keys()) {
                declared.insert(k.as_str().unwrap().to_owned());
            }
        };
        collect(&doc["Globals"]["Function"]["Environment"]["Variables"]);
        for (_, r) in doc["Resources"].as_mapping().unwrap() {
            collect(&r["Properties"]["Environment"]["Variables"]);
        }
        for var in crate::lambda_env::SAM_VARIABLES {
            assert!(declared.contains(var), "template.yaml does not declare {var}");
        }
    }

    /// The deployment creates the topics before anything uses them, and answers CloudFormation
    /// before either gives up.
    #[test]
    fn the_topics_are_created_by_the_deployment_before_they_are_used() {
        let (t, doc) = repo_template();
        let resources = &doc["Resources"];
        let topics = &resources["KafkaTopics"];
        assert_eq!(topics["Type"], "Custom::KafkaTopics");
        let props = &topics["Properties"];
        let tagged = |v: &Value| match v {
            Value::Tagged(t) => (t.tag.to_string(), t.value.as_str().unwrap_or_default().to_owned()),
            other => panic!("{other:?} is not a tagged value"),
        };
        assert_eq!(
            tagged(&props["ServiceToken"]),
            ("!Ref".into(), "KafkaTopicsFunction.Alias".into())
        );
        assert_eq!(
            tagged(&props["CodeVersion"]),
            ("!Ref".into(), "KafkaTopicsFunction.Version".into()),
            "a new code version is an update, so a catalogue change is applied"
        );
        let function = &resources["KafkaTopicsFunction"];
        assert_eq!(function["Metadata"]["BuildProperties"]["Binary"], kafka_topics::NAME);
        assert!(function["Properties"]["AutoPublishAlias"].is_string());
        // The function answers (FAILED at worst) before its own timeout, and within CloudFormation's wait.
        let timeout = t.timeouts[kafka_topics::NAME];
        assert!(kafka_topics::APPLY_TIMEOUT.as_secs() + 20 < timeout, "{timeout}");
        assert!(props["ServiceTimeout"].as_u64().unwrap() > timeout);
        // Every mapping and the WebSocket stage wait for the topics.
        let mapping = &resources["Fn::ForEach::KafkaMappings"][2];
        for id in ["${Consumer}MskMapping", "${Consumer}SelfManagedMapping"] {
            assert_eq!(mapping[id]["DependsOn"], "KafkaTopics", "{id}");
        }
        assert_eq!(resources["WebSocketStage"]["DependsOn"], "KafkaTopics");
    }

    #[test]
    fn the_tables_match_what_the_adapter_creates() {
        let (_, doc) = repo_template();
        let resources = doc["Resources"].as_mapping().unwrap();
        let tables: Vec<&Value> = resources
            .values()
            .filter(|r| r["Type"] == "AWS::DynamoDB::Table")
            .collect();
        assert_eq!(tables.len(), TABLES.len());
        for spec in TABLES {
            let table = tables
                .iter()
                .find(|t| match &t["Properties"]["TableName"] {
                    Value::Tagged(tag) => tag
                        .value
                        .as_str()
                        .is_some_and(|s| s.ends_with(&format!("}}{}", spec.base))),
                    _ => false,
                })
                .unwrap_or_else(|| panic!("no table {}", spec.base));
            let p = &table["Properties"];
            let keys: Vec<(String, String)> = p["KeySchema"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|k| (scalar(&k["AttributeName"]).unwrap(), scalar(&k["KeyType"]).unwrap()))
                .collect();
            let mut want = vec![(spec.partition_key.to_owned(), "HASH".to_owned())];
            if let Some(sort) = spec.sort_key {
                want.push((sort.to_owned(), "RANGE".to_owned()));
            }
            assert_eq!(keys, want, "{} keys", spec.base);
            let ttl = p["TimeToLiveSpecification"]["AttributeName"].as_str();
            assert_eq!(ttl, spec.ttl_attribute, "{} TTL", spec.base);
            assert_eq!(p["BillingMode"], "PAY_PER_REQUEST", "{}", spec.base);
            if spec.base == "connections" {
                let index = &p["GlobalSecondaryIndexes"][0];
                assert_eq!(index["IndexName"], CONNECTIONS_BY_USER);
                assert_eq!(index["KeySchema"][0]["AttributeName"], "userId");
            }
            if spec.base == "memberships" {
                let index = &p["GlobalSecondaryIndexes"][0];
                assert_eq!(index["IndexName"], MEMBERSHIPS_BY_CONVERSATION);
                assert_eq!(index["KeySchema"][0]["AttributeName"], "conversationId");
                assert_eq!(index["KeySchema"][1]["AttributeName"], "userId");
                assert_eq!(index["Projection"]["ProjectionType"], "KEYS_ONLY");
            }
        }
    }

    /// Every (table, DynamoDB action) a function's policies grant, `!If` branches included.
    fn dynamodb_grants(doc: &Value, function_id: &str) -> Vec<(String, String)> {
        fn statements<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
            match v {
                Value::Mapping(m) if m.contains_key("Effect") => out.push(v),
                Value::Mapping(m) => m.values().for_each(|x| statements(x, out)),
                Value::Sequence(s) => s.iter().for_each(|x| statements(x, out)),
                Value::Tagged(t) => statements(&t.value, out),
                _ => {}
            }
        }
        fn texts(v: &Value) -> Vec<String> {
            match v {
                Value::String(s) => vec![s.clone()],
                Value::Sequence(s) => s.iter().flat_map(texts).collect(),
                Value::Tagged(t) => texts(&t.value),
                _ => Vec::new(),
            }
        }
        let mut found = Vec::new();
        statements(&doc["Resources"][function_id]["Properties"]["Policies"], &mut found);
        let mut grants = Vec::new();
        for statement in found {
            let actions = texts(&statement["Action"]);
            let tables: Vec<String> = texts(&statement["Resource"])
                .iter()
                .filter_map(|r| {
                    let end = r.find("Table")? + "Table".len();
                    let start = r[..end]
                        .rfind(|c: char| !c.is_ascii_alphanumeric())
                        .map_or(0, |i| i + 1);
                    Some(r[start..end].to_owned())
                })
                .collect();
            for a in actions.iter().filter(|a| a.starts_with("dynamodb:")) {
                for t in &tables {
                    grants.push((t.clone(), a.clone()));
                }
            }
        }
        grants
    }

    #[test]
    fn each_function_may_make_every_dynamodb_call_its_code_makes() {
        let (_, doc) = repo_template();
        // What the adapter calls on each function's path (see shared/adapters/src/dynamo/).
        let needs: &[(&str, &[(&str, &str)])] = &[
            ("WsConnectFunction", &[("ConnectionsTable", "PutItem")]),
            (
                "WsDisconnectFunction",
                &[("ConnectionsTable", "GetItem"), ("ConnectionsTable", "DeleteItem")],
            ),
            (
                "WsMessageFunction",
                &[
                    ("ConnectionsTable", "GetItem"),
                    ("ConnectionsTable", "UpdateItem"),
                    ("ConversationsTable", "GetItem"),
                    ("ConversationsTable", "PutItem"),
                    ("ConversationsTable", "BatchGetItem"),
                    ("MembershipsTable", "PutItem"),
                    ("MembershipsTable", "Query"),
                    // A group growing large: its members' read positions.
                    ("MembershipsTable", "UpdateItem"),
                    ("MessagesTable", "Query"),
                    ("MessagesTable", "GetItem"),
                    ("MessagesTable", "BatchGetItem"),
                    ("MessagesTable", "UpdateItem"),
                    ("MembershipsTable", "GetItem"),
                    ("MembershipsTable", "DeleteItem"),
                    ("DevicesTable", "PutItem"),
                    ("DevicesTable", "GetItem"),
                    ("DevicesTable", "DeleteItem"),
                ],
            ),
            (
                "HttpApiFunction",
                &[
                    ("MembershipsTable", "UpdateItem"),
                    ("ConversationsTable", "GetItem"),
                    ("MessagesTable", "Query"),
                    ("MessagesTable", "GetItem"),
                    ("MessagesTable", "BatchGetItem"),
                    ("MembershipsTable", "GetItem"),
                ],
            ),
            ("DeliverMessageFunction", &[("MembershipsTable", "Query")]),
            (
                "PushNotificationFunction",
                &[
                    ("NotificationsTable", "PutItem"),
                    ("NotificationsTable", "GetItem"),
                    ("NotificationsTable", "UpdateItem"),
                    ("DevicesTable", "Query"),
                    ("DevicesTable", "DeleteItem"),
                ],
            ),
            (
                "AnalyticsFunction",
                &[("AnalyticsTable", "PutItem"), ("AnalyticsTable", "UpdateItem")],
            ),
            (
                "UpdateStatusFunction",
                &[
                    ("MembershipsTable", "GetItem"),
                    ("MembershipsTable", "UpdateItem"),
                    ("MessagesTable", "Query"),
                    ("MessagesTable", "UpdateItem"),
                    ("ReceiptsTable", "UpdateItem"),
                    ("ReceiptsTable", "BatchWriteItem"),
                ],
            ),
            (
                "PersistMessageFunction",
                &[
                    ("ReceiptsTable", "PutItem"),
                    ("MessagesTable", "PutItem"),
                    ("MessagesTable", "UpdateItem"),
                    ("MembershipsTable", "UpdateItem"),
                    ("ConversationsTable", "UpdateItem"),
                    ("ConversationsTable", "GetItem"),
                ],
            ),
        ];
        for (function, calls) in needs {
            let grants = dynamodb_grants(&doc, function);
            for (table, action) in *calls {
                assert!(
                    grants.contains(&(table.to_string(), format!("dynamodb:{action}"))),
                    "{function} may not {action} on {table} (AccessDenied in AWS); it may: {grants:?}"
                );
            }
        }
    }
}
