#!/usr/bin/env bash
# The web page in a real browser: starts the local runtime (on the broker and DynamoDB Local that
# scripts/with-infra.sh started) on free ports, then drives two Chromium pages through a chat with
# tests/browser/chat.mjs (playwright-core). Installs Debian's chromium and the npm package if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${KAFKA_BROKERS:?run under scripts/with-infra.sh}" "${DYNAMODB_ENDPOINT:?run under scripts/with-infra.sh}"

if ! command -v chromium >/dev/null; then
  echo "browser-test: installing chromium" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm install --no-audit --no-fund --silent >/dev/null)
fi

cargo build --locked -q -p relaychat-local
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
http="$(free_port)"
ws="$(free_port)"
run="b$RANDOM$RANDOM"
log="$(mktemp)"
RELAYCHAT_HTTP_PORT="$http" RELAYCHAT_WS_PORT="$ws" RELAYCHAT_TABLE_PREFIX="$run-" RELAYCHAT_GROUP_SUFFIX="-$run" \
  "${CARGO_TARGET_DIR:-target}/debug/relaychat-local" >"$log" 2>&1 &
runtime=$!
stop_runtime() {
  kill "$runtime" 2>/dev/null || true
  wait "$runtime" 2>/dev/null || true
  rm -f "$log"
}
trap stop_runtime EXIT

for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$http/config.json" >/dev/null && break
  kill -0 $runtime 2>/dev/null || { echo "browser-test: the local runtime exited:" >&2; cat "$log" >&2; exit 1; }
  sleep 0.1
done
# Consumer groups take a few seconds to join on Tansu; the page's first messages must not wait on that.
sleep 4
RELAYCHAT_WEB_URL="http://127.0.0.1:$http/" node tests/browser/chat.mjs || { echo "browser-test: runtime log:" >&2; tail -50 "$log" >&2; exit 1; }
# A dead letter for the dashboard: the malformed sample through persist-message, with the same
# broker and topics as the runtime (its dead letters go to persist-message-dlq).
RELAYCHAT_TABLE_PREFIX="$run-" "${CARGO_TARGET_DIR:-target}/debug/relaychat-local" invoke persist-message events/persist-message-malformed.json >/dev/null
RELAYCHAT_WEB_URL="http://127.0.0.1:$http/" node tests/browser/dashboard.mjs || { echo "browser-test: runtime log:" >&2; tail -50 "$log" >&2; exit 1; }
