#!/usr/bin/env bash
# Lints template.yaml with cfn-lint and `sam validate --lint`, and runs SAM's own transform on it
# (`sam validate` with language extensions, as `sam build` expands its Fn::ForEach); exits
# non-zero on any finding.
# Installs aws-sam-cli and cfn-lint (PyPI) into a cache venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${RELAYCHAT_CACHE:-$HOME/.cache/relaychat}/sam-tools"
if [ ! -x "$tools/bin/sam" ] || [ ! -x "$tools/bin/cfn-lint" ]; then
  echo "lint-template: installing aws-sam-cli and cfn-lint into $tools" >&2
  python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check aws-sam-cli cfn-lint
fi

# sam validate needs no real credentials for --lint; keep it from looking for any, and from
# phoning home.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-lint-only}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-lint-only}"
export SAM_CLI_TELEMETRY=0

status=0
echo "== cfn-lint template.yaml"
"$tools/bin/cfn-lint" template.yaml || status=1
echo "== sam validate --lint"
"$tools/bin/sam" validate --lint --region us-east-1 --template template.yaml || status=1
# `--config-env plain`: samconfig.toml has no such environment, so its `lint = true` does not
# turn this into a second cfn-lint run.
echo "== sam validate --language-extensions"
"$tools/bin/sam" validate --config-env plain --language-extensions --region us-east-1 --template template.yaml || status=1

if [ "$status" -eq 0 ]; then
  echo "lint-template: clean"
fi
exit "$status"
