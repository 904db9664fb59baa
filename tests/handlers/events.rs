//! Every sample event decodes, and survives parse → serialise → parse unchanged.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_lambda_events::event::kafka::KafkaEvent;
use relaychat_schema::kafka::partitions;

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
        let parsed = sample(&name);
        let mut again: KafkaEvent = serde_json::from_str(&serde_json::to_string(&parsed).unwrap()).unwrap();
        // aws_lambda_events writes timestamps through a float and may lose a millisecond: allow
        // exactly that, then compare everything else.
        for (group, records) in again.records.iter_mut() {
            for (r, original) in records.iter_mut().zip(&parsed.records[group]) {
                let drift = (r.timestamp.timestamp_millis() - original.timestamp.timestamp_millis()).abs();
                assert!(drift <= 1, "{name}: timestamp drifted {drift} ms");
                r.timestamp = original.timestamp.clone();
            }
        }
        assert_eq!(parsed, again, "{name}");
        let parts = partitions(&parsed);
        assert!(!parts.is_empty(), "{name} has records");
        for p in &parts {
            for r in &p.records {
                let r = r
                    .as_ref()
                    .unwrap_or_else(|bad| panic!("{name}: {} {}", bad.raw.id, bad.error));
                assert!(r.header("traceparent").is_some(), "{name}: {} keeps its headers", r.id);
            }
        }
        seen += 1;
    }
    assert!(seen >= 19, "found {seen} sample events");
}
