#!/usr/bin/env bash
# make bench: relaychat's batch decoding side by side with its peers, in one run, on one machine:
# - relaychat, the hand-written Rust path and a serde scan of the bytes (`decode --time`);
# - Powertools for AWS Lambda (TypeScript)'s Kafka consumer, JSON values, without and with a Zod
#   schema (benches/peers/node/bench.mjs);
# - Powertools for AWS Lambda (Python)'s Kafka consumer, values into a Pydantic model
#   (benches/peers/python/bench.py).
# Every implementation decodes every record and reads every field (Powertools decodes lazily: the
# harnesses read each record's key, value, headers and every field of the value).
#
# Installs the peers into $HOME/.cache/relaychat/bench-peers on first use (again when their pins
# change), builds the Rust benches, writes the events (100, 1,000, ~7 MB, 10,000 and 10,000 larger
# records), runs every implementation in turn for BENCH_ROUNDS rounds (default 5), each process
# timing BENCH_ITERATIONS iterations (default 3; the first is dropped as warm-up), and prints one
# table of medians and ratios. Then the per-partition throughput bench.
#
# DECODE_BIN=path/to/decode skips the cargo build and takes `throughput` from the same directory.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

rounds="${BENCH_ROUNDS:-5}"
iterations="${BENCH_ITERATIONS:-3}"
[ "$iterations" -ge 2 ] || { echo "bench: BENCH_ITERATIONS must be at least 2 (the first is a warm-up)" >&2; exit 2; }
[ "$rounds" -ge 1 ] || { echo "bench: BENCH_ROUNDS must be at least 1" >&2; exit 2; }
cache="${RELAYCHAT_CACHE:-$HOME/.cache/relaychat}"
peers="$cache/bench-peers"

command -v node >/dev/null && command -v npm >/dev/null && command -v python3 >/dev/null || scripts/install-build-deps.sh

# The Node peer: installed from the lock file, reinstalled when it changes. The harness is copied
# beside its node_modules on every run (ES modules resolve packages from the script's folder).
node_dir="$peers/node"
if ! cmp -s benches/peers/node/package-lock.json "$node_dir/package-lock.json" || [ ! -d "$node_dir/node_modules" ]; then
  echo "bench: installing the Node peer into $node_dir" >&2
  rm -rf "$node_dir"
  mkdir -p "$node_dir"
  cp benches/peers/node/package.json benches/peers/node/package-lock.json "$node_dir/"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || { rm -rf "$node_dir"; exit 1; }
fi
cp benches/peers/node/bench.mjs "$node_dir/bench.mjs"

# The Python peer: a venv, reinstalled when requirements.txt changes.
py_dir="$peers/python"
if ! cmp -s benches/peers/python/requirements.txt "$py_dir/requirements.txt" || [ ! -x "$py_dir/bin/python" ]; then
  echo "bench: installing the Python peer into $py_dir" >&2
  rm -rf "$py_dir"
  python3 -m venv "$py_dir" || { echo "bench: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; rm -rf "$py_dir"; exit 1; }
  "$py_dir/bin/pip" install --quiet --disable-pip-version-check -r benches/peers/python/requirements.txt \
    || { rm -rf "$py_dir"; exit 1; }
  cp benches/peers/python/requirements.txt "$py_dir/"
fi

# The Rust benches.
if [ -n "${DECODE_BIN:-}" ]; then
  decode="$DECODE_BIN"
  throughput="$(dirname "$DECODE_BIN")/throughput"
else
  cargo build --release --locked -q -p relaychat-bench
  target="${CARGO_TARGET_DIR:-target}"
  case "$target" in /*) ;; *) target="$repo/$target" ;; esac
  decode="$target/release/decode"
  throughput="$target/release/throughput"
fi
[ -x "$decode" ] || { echo "bench: no decode binary at $decode" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/relaychat-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
"$decode" --write-events "$work/events" >/dev/null
results="$work/results.jsonl"
: >"$results"

events=(100 1000 6mb 10000 10000-large)
impls=(rust node node-zod python)
run() {
  local impl="$1" file="$2"
  case "$impl" in
    rust) "$decode" --time "$file" "$iterations" ;;
    node) node "$node_dir/bench.mjs" "$file" "$iterations" ;;
    node-zod) node "$node_dir/bench.mjs" "$file" "$iterations" --zod ;;
    python) "$py_dir/bin/python" benches/peers/python/bench.py "$file" "$iterations" ;;
  esac
}

started=$SECONDS
for round in $(seq 1 "$rounds"); do
  echo "bench: round $round of $rounds" >&2
  for event in "${events[@]}"; do
    for impl in "${impls[@]}"; do
      if ! run "$impl" "$work/events/$event.json" >>"$results"; then
        echo "bench: $impl failed on $event.json" >&2
        exit 1
      fi
    done
  done
done

echo
echo "decode: chat-message MSK events (3 partitions, a traceparent header each); $rounds rounds x $iterations iterations, $((SECONDS - started)) s"
echo "versions: node $(node --version), $("$py_dir/bin/python" --version)," \
  "$(cd "$node_dir" && node -p "const v = (p) => require('./node_modules/' + p + '/package.json').version; \
    '@aws-lambda-powertools/kafka ' + v('@aws-lambda-powertools/kafka') + ', zod ' + v('zod')")," \
  "$("$py_dir/bin/python" -c "from importlib.metadata import version as v; print('aws-lambda-powertools', v('aws-lambda-powertools') + ', pydantic', v('pydantic'))")"
python3 benches/peers/report.py "$results" "$work/events"

echo
if [ -x "$throughput" ]; then
  "$throughput"
else
  echo "bench: no throughput binary at $throughput" >&2
  exit 1
fi

# Init and size: the function binaries for this machine, started against a stand-in Runtime API
# (benches/src/bin/init.rs). INIT_DIR=dir skips the build (e.g. binaries built elsewhere).
echo
if [ -n "${INIT_DIR:-}" ]; then
  functions_dir="$INIT_DIR"
else
  cargo build --release --locked -q $(for f in functions/*/; do f="$(basename "$f")"; printf -- '-p %s --bin %s ' "$f" "$f"; done)
  functions_dir="$(dirname "$decode")"
fi
"$(dirname "$decode")/init" "$functions_dir"
# The arm64 packages `make lambda` built, if any (their size; they do not run here).
lambda_dir="${CARGO_TARGET_DIR:-target}/lambda"
if compgen -G "$lambda_dir/*/bootstrap" >/dev/null; then
  echo
  echo "make lambda packages (arm64 bootstrap, MB):"
  for b in "$lambda_dir"/*/bootstrap; do
    stat -c '%s' "$b" | awk -v name="$(basename "$(dirname "$b")")" '{ printf "%18s %10.1f\n", name, $1 / 1e6 }'
  done
fi
