# relaychat: `make test` runs every test against real local servers; see README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
INFRA := scripts/with-infra.sh
RELAYCHAT_CACHE ?= $(HOME)/.cache/relaychat
SAM_TOOLS := $(RELAYCHAT_CACHE)/sam-tools
TOOLS_PATH := $(RELAYCHAT_CACHE)/lambda-tools/bin:$(SAM_TOOLS)/bin:$$PATH
# samconfig.toml environment for build/deploy: default (dev) or prod.
ENV ?= default

.PHONY: help dev watch invoke test unit lint fmt infra events lambda lambda-tools sam-tools build deploy lint-template bench

help:
	@echo "make dev      the whole system locally: broker, DynamoDB Local, every function, WebSocket gateway, web page"
	@echo "make invoke FN=<function> EVENT=events/<file>.json   one function on one sample event"
	@echo "make watch    beside make dev: cargo lambda watch on its servers (then cargo lambda invoke FN --data-file events/FILE.json)"
	@echo "make test     all tests: unit, adapters and handlers against DynamoDB Local + Tansu (installed on first run)"
	@echo "make unit     unit tests only (no servers)"
	@echo "make lint     rustfmt --check, clippy -D warnings, no unused dependency (cargo-machete)"
	@echo "make lambda   cargo lambda build --release --arm64 for every function"
	@echo "make events   regenerate the sample events under events/"
	@echo "make build    sam build (cargo-lambda, arm64, no Docker); ENV=prod for the prod config"
	@echo "make deploy   sam build + sam deploy with samconfig.toml's ENV (default: dev); see docs/deploy.md"
	@echo "make lint-template  cfn-lint, sam validate --lint and sam validate --language-extensions on template.yaml"
	@echo "make bench    decode times and ratios against Powertools (Node, Node + Zod, Python + Pydantic), then throughput"

# Local AWS credentials: DynamoDB Local accepts any; nothing here talks to AWS.
LOCAL_AWS := AWS_ACCESS_KEY_ID=$${AWS_ACCESS_KEY_ID:-local} AWS_SECRET_ACCESS_KEY=$${AWS_SECRET_ACCESS_KEY:-local} AWS_REGION=$${AWS_REGION:-us-east-1}

dev:
	scripts/install-build-deps.sh
	scripts/install-infra.sh
	$(CARGO) build --locked -p relaychat-local
	$(LOCAL_AWS) $(CARGO) run --locked -q -p relaychat-local

invoke:
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke FN=persist-message EVENT=events/persist-message.json"; exit 2; }
	$(CARGO) build --locked -q -p relaychat-local
	$(INFRA) $(CARGO) run --locked -q -p relaychat-local -- invoke $(FN) $(EVENT)

test:
	scripts/check-repo.sh
	scripts/install-build-deps.sh
	scripts/install-lambda-tools.sh --watch-only
	scripts/lint-template.sh
	$(CARGO) build --locked -p relaychat-local
	$(INFRA) scripts/test-summary.sh bash -c '$(CARGO) test --workspace --locked -- --show-output && scripts/browser-test.sh && scripts/fuzz.sh && scripts/instructions.sh'

unit:
	$(CARGO) test --workspace --locked --lib --bins

lint:
	scripts/check-repo.sh
	scripts/check-deps.sh
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

infra:
	scripts/install-infra.sh

events:
	python3 scripts/gen-events.py

lambda:
	scripts/install-build-deps.sh
	scripts/install-lambda-tools.sh
	# The function packages only (not --workspace): the local runtime's `dev` helpers stay out.
	PATH="$$HOME/.cache/relaychat/lambda-tools/bin:$$PATH" cargo lambda build --release --arm64 \
	  $(foreach f,$(notdir $(wildcard functions/*)),-p $(f) --bin $(f))

lambda-tools:
	scripts/install-lambda-tools.sh

# With `make dev` running (it writes .local/lambda.env): the functions under cargo-lambda's Lambda
# emulator, on make dev's servers. Then: cargo lambda invoke FN --data-file events/FILE.json
watch:
	@test -s .local/lambda.env || { echo "start make dev first (it writes .local/lambda.env)"; exit 2; }
	scripts/install-lambda-tools.sh --watch-only
	PATH="$(RELAYCHAT_CACHE)/lambda-tools/bin:$$PATH" cargo lambda watch --env-file .local/lambda.env

sam-tools:
	@test -x "$(SAM_TOOLS)/bin/sam" || { python3 -m venv "$(SAM_TOOLS)" && \
	  "$(SAM_TOOLS)/bin/pip" install --quiet --disable-pip-version-check aws-sam-cli cfn-lint; }

build: lambda-tools sam-tools
	PATH="$(TOOLS_PATH)" sam build --config-env $(ENV)

deploy: build
	PATH="$(TOOLS_PATH)" sam deploy --config-env $(ENV)

lint-template:
	scripts/lint-template.sh

# Installs the peers (npm, PyPI) under $(RELAYCHAT_CACHE)/bench-peers on first use; BENCH_ROUNDS,
# BENCH_ITERATIONS and DECODE_BIN (skip the cargo build) tune it.
bench:
	scripts/bench.sh
