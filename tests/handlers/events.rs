//! Every sample event decodes, as aws_lambda_events reads it too.

use aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerV2Request, ApiGatewayV2httpRequest, ApiGatewayWebsocketProxyRequest,
};
use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest;
use aws_lambda_events::event::kafka::KafkaEvent;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use relaychat_schema::http::Route;

use crate::support::{events_dir, sample, ws_sample};

#[test]
fn every_sample_event_round_trips_and_decodes() {
    let mut seen = 0;
    for entry in std::fs::read_dir(events_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.starts_with("ws-") {
            let parsed: ApiGatewayWebsocketProxyRequest = ws_sample(&name);
            let again: ApiGatewayWebsocketProxyRequest =
                serde_json::from_str(&serde_json::to_string(&parsed).unwrap()).unwrap();
            assert_eq!(parsed, again, "{name}");
            assert!(parsed.request_context.connection_id.is_some() && parsed.request_context.route_key.is_some());
            seen += 1;
            continue;
        }
        if name.starts_with("http-authorizer") {
            let parsed: ApiGatewayV2CustomAuthorizerV2Request =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert!(
                parsed.identity_source.is_some_and(|s| s[0].starts_with("Bearer ")),
                "{name}"
            );
            seen += 1;
            continue;
        }
        if name.starts_with("http-api") {
            let parsed: ApiGatewayV2httpRequest =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let route = parsed.route_key.as_deref().unwrap_or_default();
            assert!(Route::find(route).is_some(), "{name}: {route} is a route of the API");
            assert!(
                parsed.request_context.authorizer.is_some(),
                "{name}: the authorizer's user"
            );
            seen += 1;
            continue;
        }
        if name.starts_with("kafka-topics") {
            let text = std::fs::read_to_string(&path).unwrap();
            let parsed: CloudFormationCustomResourceRequest = serde_json::from_str(&text).unwrap();
            let CloudFormationCustomResourceRequest::Create(create) = parsed else {
                panic!("{name}: a Create request")
            };
            assert_eq!(create.resource_type, "Custom::KafkaTopics", "{name}");
            assert!(create.resource_properties.get("Replication").is_some(), "{name}");
            seen += 1;
            continue;
        }
        // relaychat's reading agrees with aws_lambda_events' general one, record by record.
        let parsed = sample(&name);
        let text = std::fs::read_to_string(path).unwrap();
        let reference: KafkaEvent = serde_json::from_str(&text).unwrap();
        let total: usize = reference.records.values().map(Vec::len).sum();
        assert!(total > 0, "{name} has records");
        assert_eq!(parsed.record_count(), total, "{name}");
        for p in &parsed.partitions {
            let originals = &reference.records[&p.topic_partition()];
            for r in &p.records {
                let r = r
                    .as_ref()
                    .unwrap_or_else(|bad| panic!("{name}: {} {}", bad.raw.id, bad.error));
                let original = originals.iter().find(|o| o.offset == r.id.offset).unwrap();
                let value = STANDARD.decode(original.value.as_deref().unwrap()).unwrap();
                assert_eq!(r.value, value, "{name}: {}", r.id);
                let key = original.key.as_deref().map(|k| STANDARD.decode(k).unwrap());
                assert_eq!(r.key, key, "{name}: {}", r.id);
                // aws_lambda_events reads timestamps through a float and may lose a millisecond.
                let drift = (r.timestamp.timestamp_millis() - original.timestamp.timestamp_millis()).abs();
                assert!(drift <= 1, "{name}: timestamp drifted {drift} ms");
                assert!(r.header("traceparent").is_some(), "{name}: {} keeps its headers", r.id);
            }
        }
        seen += 1;
    }
    assert!(seen >= 26, "found {seen} sample events");
}
