# The verbs a newcomer looks for. `make run` serves on SQLite with no setup;
# `make test` runs the whole suite against SQLite and Postgres, then the contract tests.

CARGO ?= cargo

.PHONY: run test contract lint fmt build release openapi bench soak fuzz deny deny-advisories

## run: build and serve on 127.0.0.1:8080 with ./sesame.db (SQLite)
run:
	$(CARGO) run -p sesame-server --bin sesame -- serve

## test: the whole suite on SQLite and Postgres (finds or starts a Postgres), then the
## contract tests; the suite runs the `sesame` binary itself, so it is built first, and
## drives a real Chromium and nginx, installed from Debian's packages when missing
test:
	tests/install-tools.sh
	$(CARGO) build -p sesame-server --bin sesame
	tests/with-postgres.sh $(CARGO) test --workspace --all-targets
	CARGO="$(CARGO)" tests/contract/run.sh

## contract: validate openapi/openapi.json as OpenAPI 3.1 and run schemathesis against a
## live server (tools installed into ./.venv from PyPI on first use)
contract:
	CARGO="$(CARGO)" tests/contract/run.sh

## lint: formatting and clippy, as CI runs them
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

build:
	$(CARGO) build -p sesame-server

release:
	$(CARGO) build --release -p sesame-server

## openapi: regenerate the committed OpenAPI document (a test fails when it drifts)
openapi:
	$(CARGO) run -q -p sesame-server --bin sesame -- openapi > openapi/openapi.json.tmp
	mv openapi/openapi.json.tmp openapi/openapi.json

## fuzz: every fuzz target for FUZZ_SECONDS each (default 60; needs nightly + cargo-fuzz)
FUZZ_SECONDS ?= 60
fuzz:
	tests/fuzz.sh $(FUZZ_SECONDS)

## deny: licences, bans, duplicate versions and sources (offline; installs cargo-deny)
deny:
	@command -v cargo-deny >/dev/null || $(CARGO) install cargo-deny --locked
	$(CARGO) deny check licenses bans sources

## deny-advisories: RustSec advisories (needs github.com for the advisory database)
deny-advisories:
	@command -v cargo-deny >/dev/null || $(CARGO) install cargo-deny --locked
	$(CARGO) deny check advisories

## bench: release build, then every scenario on Postgres and SQLite (tests/bench/run.sh);
## prints one table and writes tests/bench/results/latest.md. BENCH_SECONDS=5 per scenario.
bench:
	tests/bench/run.sh

## soak: release build, then SOAK_SECONDS (default 600) of mixed load on one server
## (tests/soak/run.sh; SOAK_BACKEND=sqlite or postgres); fails on any 5xx, lost session,
## unexpected answer, panic or RSS growth; writes tests/soak/results/latest.md
soak:
	tests/soak/run.sh
