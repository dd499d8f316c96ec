# The verbs a newcomer looks for. `make run` serves on SQLite with no setup;
# `make test` runs the whole suite against SQLite and Postgres.

CARGO ?= cargo

.PHONY: run test lint fmt build release openapi bench clean-test-dbs

## run: build and serve on 127.0.0.1:8080 with ./sesame.db (SQLite)
run:
	$(CARGO) run -p sesame-server --bin sesame -- serve

## test: the whole suite on SQLite and Postgres (finds or starts a Postgres)
test:
	tests/with-postgres.sh $(CARGO) test --workspace --all-targets

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

## openapi: regenerate the committed OpenAPI document
openapi:
	$(CARGO) run -q -p sesame-server --bin sesame -- openapi > openapi/openapi.json

## bench: release build, then every scenario on Postgres and SQLite (tests/bench/run.sh);
## prints one table and writes tests/bench/results/latest.md. BENCH_SECONDS=10 per scenario.
bench:
	tests/bench/run.sh
