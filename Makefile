# relaychat: `make test` runs every test against real local servers; see README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
INFRA := scripts/with-infra.sh

.PHONY: help test unit lint fmt infra events lambda

help:
	@echo "make test     all tests: unit, adapters and handlers against DynamoDB Local + Tansu (installed on first run)"
	@echo "make unit     unit tests only (no servers)"
	@echo "make lint     rustfmt --check and clippy -D warnings"
	@echo "make lambda   cargo lambda build --release --arm64 for every function"
	@echo "make events   regenerate the sample events under events/"

test:
	$(INFRA) scripts/test-summary.sh $(CARGO) test --workspace --locked

unit:
	$(CARGO) test --workspace --locked --lib --bins

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

infra:
	scripts/install-infra.sh

events:
	python3 scripts/gen-events.py

lambda:
	scripts/install-lambda-tools.sh
	PATH="$$HOME/.cache/relaychat/lambda-tools/bin:$$PATH" cargo lambda build --release --arm64 --workspace \
	  $(foreach f,$(notdir $(wildcard functions/*)),--bin $(f))
