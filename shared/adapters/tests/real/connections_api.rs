use relaychat_connections::Outbound;
use relaychat_core::ports::{FramePoster, PostOutcome};
use relaychat_schema::ConnectionId;
use relaychat_testkit::connections_api;

#[tokio::test]
async fn frames_reach_live_connections_and_unknown_ones_are_gone() {
    let (registry, api) = connections_api().await;
    // API Gateway ids end in '=': the SDK URL-encodes it, the emulator decodes it.
    let mut socket = registry.register("L0SM9cOFvHcCIhw=", "127.0.0.1", "test");
    let live = ConnectionId::parse("L0SM9cOFvHcCIhw=").unwrap();
    assert_eq!(
        api.post(&live, br#"{"type":"typing"}"#).await.unwrap(),
        PostOutcome::Delivered
    );
    assert_eq!(
        socket.recv().await,
        Some(Outbound::Frame(br#"{"type":"typing"}"#.to_vec()))
    );
    // '/' and '+' (base64) survive the SDK's path encoding and the emulator's decoding.
    let mut slashed = registry.register("ab/c+d=", "127.0.0.1", "test");
    assert_eq!(
        api.post(&ConnectionId::parse("ab/c+d=").unwrap(), b"{}").await.unwrap(),
        PostOutcome::Delivered
    );
    assert_eq!(slashed.recv().await, Some(Outbound::Frame(b"{}".to_vec())));
    let unknown = ConnectionId::parse("nobody=").unwrap();
    assert_eq!(api.post(&unknown, b"{}").await.unwrap(), PostOutcome::Gone);
}

#[tokio::test]
async fn a_frame_over_128_kb_is_refused_permanently() {
    let (registry, api) = connections_api().await;
    let _socket = registry.register("big", "127.0.0.1", "test");
    let err = api
        .post(&ConnectionId::parse("big").unwrap(), &vec![b'x'; 128 * 1024 + 1])
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{}", err.chain());
}
