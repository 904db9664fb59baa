//! The part of the `AWS::LanguageExtensions` transform the template uses, applied to the parsed
//! YAML before anything reads it, so the rest of template.rs sees plain CloudFormation:
//! `Fn::ForEach::<Name>` loops under Resources (nested ones included), `!FindInMap` against the
//! template's Mappings (`DefaultValue` included), and `!Ref` of an intrinsic that gives a name
//! collapsed to `!Ref <name>`. A transform function left over is an error: a resource the
//! runtime silently missed would be worse.

use serde_yaml::value::{Tag, TaggedValue};
use serde_yaml::{Mapping, Value};

use super::{TemplateError, call, scalar};

const FOR_EACH: &str = "Fn::ForEach::";

/// The `Fn::` functions CloudFormation evaluates itself; any other belongs to a transform.
const INTRINSICS: &[&str] = &[
    "Fn::Base64",
    "Fn::Cidr",
    "Fn::GetAtt",
    "Fn::GetAZs",
    "Fn::ImportValue",
    "Fn::Join",
    "Fn::Select",
    "Fn::Split",
    "Fn::Sub",
    "Fn::Transform",
    "Fn::And",
    "Fn::Equals",
    "Fn::If",
    "Fn::Not",
    "Fn::Or",
];

/// Expands the template's Resources in place.
pub(super) fn expand(doc: &mut Value) -> Result<(), TemplateError> {
    let lookup = Lookup::new(doc);
    let Some(resources) = doc.get_mut("Resources") else {
        return Ok(());
    };
    let expanded = lookup.resolve(&expand_loops(resources, &lookup)?)?;
    refuse_leftovers(&expanded)?;
    if let Some(ids) = expanded.as_mapping() {
        check_logical_ids(ids)?;
    }
    *resources = expanded;
    Ok(())
}

fn error(message: String) -> TemplateError {
    TemplateError::LanguageExtensions(message)
}

/// What a loop's collection and `!FindInMap` look up: parameters and mappings.
struct Lookup {
    parameters: Value,
    mappings: Value,
}

impl Lookup {
    fn new(doc: &Value) -> Self {
        Self {
            parameters: doc.get("Parameters").cloned().unwrap_or(Value::Null),
            mappings: doc.get("Mappings").cloned().unwrap_or(Value::Null),
        }
    }

    /// A parameter's `Default`, if it has one.
    fn default_of(&self, parameter: &str) -> Option<&Value> {
        self.parameters.get(parameter)?.get("Default")
    }

    /// A loop's items: a list of scalars, or `!Ref` to a CommaDelimitedList parameter (its default).
    fn collection(&self, v: &Value) -> Result<Vec<String>, TemplateError> {
        if let Some(parameter) = call(v, "Ref").and_then(Value::as_str) {
            let kind = self.parameters.get(parameter).and_then(|p| p.get("Type"));
            let is_list = kind.and_then(Value::as_str) == Some("CommaDelimitedList");
            let default = self.default_of(parameter).and_then(Value::as_str).filter(|_| is_list);
            let default = default.ok_or_else(|| {
                error(format!(
                    "!Ref {parameter}: a loop's collection must be a CommaDelimitedList parameter with a Default"
                ))
            })?;
            return Ok(default.split(',').map(|item| item.trim().to_owned()).collect());
        }
        let items = v
            .as_sequence()
            .ok_or_else(|| error(format!("a loop's collection must be a list, not {v:?}")))?;
        items
            .iter()
            .map(|item| scalar(item).ok_or_else(|| error(format!("a loop's item must be a scalar, not {item:?}"))))
            .collect()
    }

    /// A `!FindInMap` key: a scalar, or `!Ref` to a parameter (its default).
    fn key(&self, v: &Value) -> Result<String, TemplateError> {
        if let Some(parameter) = call(v, "Ref").and_then(Value::as_str) {
            return self
                .default_of(parameter)
                .and_then(scalar)
                .ok_or_else(|| error(format!("!FindInMap key !Ref {parameter}: no parameter with a Default")));
        }
        scalar(v).ok_or_else(|| error(format!("!FindInMap key must be a name, not {v:?}")))
    }

    /// `[Map, TopKey, SecondKey]` or `[Map, TopKey, SecondKey, {DefaultValue: v}]`.
    fn find_in_map(&self, args: &Value) -> Result<Value, TemplateError> {
        let args = args.as_sequence().map(Vec::as_slice).unwrap_or_default();
        let (map, top, second, fallback) = match args {
            [map, top, second] => (map, top, second, None),
            [map, top, second, options] => (map, top, second, options.get("DefaultValue")),
            _ => {
                return Err(error(format!(
                    "!FindInMap wants [Map, TopKey, SecondKey], not {args:?}"
                )));
            }
        };
        let (map, top, second) = (self.key(map)?, self.key(top)?, self.key(second)?);
        self.mappings
            .get(&map)
            .and_then(|m| m.get(&top))
            .and_then(|m| m.get(&second))
            .or(fallback)
            .cloned()
            .ok_or_else(|| {
                error(format!(
                    "!FindInMap [{map}, {top}, {second}]: no such entry and no DefaultValue"
                ))
            })
    }

    /// Replaces every `!FindInMap` by its value and collapses `!Ref <intrinsic>`, innermost first.
    fn resolve(&self, v: &Value) -> Result<Value, TemplateError> {
        let v = match v {
            Value::Sequence(items) => Value::Sequence(items.iter().map(|i| self.resolve(i)).collect::<Result<_, _>>()?),
            Value::Mapping(m) => Value::Mapping(
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), self.resolve(v)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            Value::Tagged(t) => tagged(t.tag.clone(), self.resolve(&t.value)?),
            other => other.clone(),
        };
        if let Some(args) = call(&v, "FindInMap") {
            return self.find_in_map(args);
        }
        if let Some(target) = call(&v, "Ref").filter(|t| scalar(t).is_none()) {
            return Ok(tagged(Tag::new("Ref"), Value::String(name_of(target)?)));
        }
        Ok(v)
    }
}

/// The name an intrinsic under `!Ref` gives: `{"Fn::Sub": "SendMessageRoute"}` once the loop has
/// substituted its identifier (a `!FindInMap` there is already a plain string).
fn name_of(target: &Value) -> Result<String, TemplateError> {
    call(target, "Sub")
        .and_then(Value::as_str)
        .filter(|text| !text.contains("${"))
        .map(str::to_owned)
        .ok_or_else(|| error(format!("!Ref of {target:?}: not a name")))
}

fn tagged(tag: Tag, value: Value) -> Value {
    Value::Tagged(Box::new(TaggedValue { tag, value }))
}

/// The value with every `Fn::ForEach::<Name>` entry of its mappings expanded.
fn expand_loops(v: &Value, lookup: &Lookup) -> Result<Value, TemplateError> {
    Ok(match v {
        Value::Mapping(m) => Value::Mapping(expand_mapping(m, lookup)?),
        Value::Sequence(items) => Value::Sequence(
            items
                .iter()
                .map(|i| expand_loops(i, lookup))
                .collect::<Result<_, _>>()?,
        ),
        Value::Tagged(t) => tagged(t.tag.clone(), expand_loops(&t.value, lookup)?),
        other => other.clone(),
    })
}

/// A mapping with each `Fn::ForEach::<Name>` entry replaced by the entries its iterations give.
fn expand_mapping(m: &Mapping, lookup: &Lookup) -> Result<Mapping, TemplateError> {
    let mut out = Mapping::new();
    for (key, value) in m {
        match key.as_str().and_then(|k| k.strip_prefix(FOR_EACH)) {
            Some(name) => merge(&mut out, for_each(name, value, lookup)?)?,
            None => merge(
                &mut out,
                Mapping::from_iter([(key.clone(), expand_loops(value, lookup)?)]),
            )?,
        }
    }
    Ok(out)
}

/// One loop's entries: its body once per item, with the identifier replaced (see `substitute`)
/// and the loops inside it expanded in turn.
fn for_each(name: &str, args: &Value, lookup: &Lookup) -> Result<Mapping, TemplateError> {
    let shape = || {
        error(format!(
            "{FOR_EACH}{name} wants [Identifier, [Item, ...], {{Key: Body}}]"
        ))
    };
    let [identifier, collection, body] = args.as_sequence().map(Vec::as_slice).unwrap_or_default() else {
        return Err(shape());
    };
    let identifier = identifier.as_str().ok_or_else(shape)?;
    let body = body.as_mapping().ok_or_else(shape)?;
    let mut out = Mapping::new();
    for item in lookup.collection(collection)? {
        let iteration = substitute(&Value::Mapping(body.clone()), identifier, &item);
        let iteration = iteration.as_mapping().ok_or_else(shape)?;
        merge(&mut out, expand_mapping(iteration, lookup)?)?;
    }
    Ok(out)
}

/// Adds the entries to the mapping; two entries with one key (a loop whose keys do not vary
/// with its identifier, or one that repeats a resource) are an error, as in CloudFormation.
fn merge(out: &mut Mapping, entries: Mapping) -> Result<(), TemplateError> {
    for (key, value) in entries {
        if out.contains_key(&key) {
            return Err(error(format!("{key:?} is declared twice")));
        }
        out.insert(key, value);
    }
    Ok(())
}

/// One iteration's copy of a loop body: `${Id}` and `&{Id}` replaced in every key and string
/// (tagged values included), and `!Ref Id` by the item itself.
fn substitute(v: &Value, identifier: &str, item: &str) -> Value {
    if call(v, "Ref").and_then(Value::as_str) == Some(identifier) {
        return Value::String(item.to_owned());
    }
    let again = |v: &Value| substitute(v, identifier, item);
    match v {
        Value::String(s) => Value::String(replace_identifier(s, identifier, item)),
        Value::Sequence(items) => Value::Sequence(items.iter().map(again).collect()),
        Value::Mapping(m) => Value::Mapping(m.iter().map(|(k, v)| (again(k), again(v))).collect()),
        Value::Tagged(t) => tagged(t.tag.clone(), again(&t.value)),
        other => other.clone(),
    }
}

/// `${Id}` → the item; `&{Id}` → the item's ASCII letters and digits only (a logical id's).
fn replace_identifier(text: &str, identifier: &str, item: &str) -> String {
    let alphanumeric: String = item.chars().filter(char::is_ascii_alphanumeric).collect();
    text.replace(&format!("${{{identifier}}}"), item)
        .replace(&format!("&{{{identifier}}}"), &alphanumeric)
}

/// Refuses a `Fn::` key CloudFormation does not evaluate itself (`Fn::Length`, an unexpanded
/// `Fn::ForEach`, ...).
fn refuse_leftovers(v: &Value) -> Result<(), TemplateError> {
    match v {
        Value::Mapping(m) => m.iter().try_for_each(|(key, value)| match key.as_str() {
            Some(k) if k.starts_with("Fn::") && !INTRINSICS.contains(&k) => {
                Err(error(format!("{k}: not a function the local runtime expands")))
            }
            _ => refuse_leftovers(value),
        }),
        Value::Sequence(items) => items.iter().try_for_each(refuse_leftovers),
        Value::Tagged(t) => refuse_leftovers(&t.value),
        _ => Ok(()),
    }
}

/// Every resource's logical id is ASCII letters and digits (CloudFormation's rule), so a loop
/// whose item gives anything else, or a stray key, is caught here.
fn check_logical_ids(resources: &Mapping) -> Result<(), TemplateError> {
    for id in resources.keys() {
        let valid = id
            .as_str()
            .is_some_and(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()));
        if !valid {
            return Err(error(format!("{id:?} is not a logical id (letters and digits only)")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template's Resources once expanded.
    fn expanded(template: &str) -> Result<Value, TemplateError> {
        let mut doc: Value = serde_yaml::from_str(template).expect("YAML");
        expand(&mut doc)?;
        Ok(doc["Resources"].clone())
    }

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).expect("YAML")
    }

    fn refusal(template: &str) -> String {
        match expanded(template) {
            Err(e @ TemplateError::LanguageExtensions(_)) => e.to_string(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn nested_loops_substitute_in_keys_strings_and_tagged_values() {
        let resources = expanded(
            r#"
Resources:
  Fn::ForEach::Outer:
    - Kind
    - [A, B]
    - Fn::ForEach::Inner:
        - Key
        - ["$default", send-Message]
        - Route${Kind}&{Key}:
            Type: AWS::ApiGatewayV2::Route
            Properties:
              RouteKey: !Sub "${Key}"
              OperationName: !Ref Key
              Tags: {Kind: {Ref: Kind}}
          Response${Kind}&{Key}:
            Type: AWS::ApiGatewayV2::RouteResponse
            DependsOn: !Sub "Route${Kind}&{Key}"
            Properties:
              RouteId: !Ref {"Fn::Sub": "Route${Kind}&{Key}"}
"#,
        )
        .expect("expands");
        let mut want = Mapping::new();
        for kind in ["A", "B"] {
            for (key, id) in [("$default", "default"), ("send-Message", "sendMessage")] {
                want.insert(
                    format!("Route{kind}{id}").into(),
                    yaml(&format!(
                        "{{Type: AWS::ApiGatewayV2::Route, Properties: {{RouteKey: !Sub '{key}', OperationName: '{key}', Tags: {{Kind: {kind}}}}}}}"
                    )),
                );
                want.insert(
                    format!("Response{kind}{id}").into(),
                    yaml(&format!(
                        "{{Type: AWS::ApiGatewayV2::RouteResponse, DependsOn: !Sub 'Route{kind}{id}', Properties: {{RouteId: !Ref Route{kind}{id}}}}}"
                    )),
                );
            }
        }
        assert_eq!(resources, Value::Mapping(want));
    }

    #[test]
    fn a_loop_inside_properties_and_over_a_list_parameter_expands() {
        let resources = expanded(
            r#"
Parameters:
  Names: {Type: CommaDelimitedList, Default: "DisplayName, TopicName"}
Resources:
  Topic:
    Type: AWS::SNS::Topic
    Properties:
      Fn::ForEach::Props:
        - P
        - !Ref Names
        - ${P}: !Sub "x-${P}"
"#,
        )
        .expect("expands");
        let want = yaml(
            "Topic: {Type: AWS::SNS::Topic, Properties: {DisplayName: !Sub x-DisplayName, TopicName: !Sub x-TopicName}}",
        );
        assert_eq!(resources, want);
    }

    #[test]
    fn find_in_map_looks_up_by_item_or_parameter_and_falls_back_to_its_default() {
        let resources = expanded(
            r#"
Parameters:
  Size: {Type: String, Default: Small}
Mappings:
  Consumers:
    Persist: {Function: PersistFunction, BatchSize: 100}
    Relay: {Function: RelayFunction}
  Sizes:
    Small: {Memory: 128}
Resources:
  Fn::ForEach::Mappings:
    - Consumer
    - [Persist, Relay]
    - ${Consumer}Mapping:
        Type: AWS::Lambda::EventSourceMapping
        Properties:
          FunctionName: !Ref {"Fn::FindInMap": [Consumers, !Ref Consumer, Function]}
          BatchSize: !FindInMap [Consumers, !Ref Consumer, BatchSize, {DefaultValue: 10}]
          Memory: {"Fn::FindInMap": [Sizes, !Ref Size, Memory]}
"#,
        )
        .expect("expands");
        let want = yaml(
            r#"
PersistMapping:
  Type: AWS::Lambda::EventSourceMapping
  Properties: {FunctionName: !Ref PersistFunction, BatchSize: 100, Memory: 128}
RelayMapping:
  Type: AWS::Lambda::EventSourceMapping
  Properties: {FunctionName: !Ref RelayFunction, BatchSize: 10, Memory: 128}
"#,
        );
        assert_eq!(resources, want);
        let missing =
            refusal("Mappings: {M: {A: {B: 1}}}\nResources: {X: {Type: T, Properties: {P: !FindInMap [M, A, C]}}}");
        assert!(missing.contains("[M, A, C]"), "{missing}");
    }

    #[test]
    fn what_the_runtime_cannot_expand_is_refused_not_skipped() {
        for (template, says) in [
            (
                "Resources: {X: {Type: T, Properties: {N: {'Fn::Length': [a, b]}}}}",
                "Fn::Length",
            ),
            (
                "Resources: {'Fn::ForEach': [Id, [A], {'${Id}X': {Type: T}}]}",
                "Fn::ForEach",
            ),
            ("Resources: {'Fn::ForEach::L': [Id, [A]]}", "wants [Identifier"),
            (
                "Resources: {'Fn::ForEach::L': [Id, A, {'${Id}X': {Type: T}}]}",
                "must be a list",
            ),
            (
                "Resources: {'Fn::ForEach::L': [Id, !Ref Nowhere, {'${Id}X': {Type: T}}]}",
                "CommaDelimitedList",
            ),
            (
                "Resources: {'Fn::ForEach::L': [Id, [A, B], {Same: {Type: T}}]}",
                "declared twice",
            ),
            (
                "Resources: {'Fn::ForEach::L': [Id, [a-b], {'${Id}X': {Type: T}}]}",
                "not a logical id",
            ),
            (
                "Resources: {X: {Type: T, Properties: {R: !Ref {'Fn::Join': ['', [a, b]]}}}}",
                "not a name",
            ),
        ] {
            let refusal = refusal(template);
            assert!(refusal.contains(says), "{template}: {refusal}");
        }
    }
}
