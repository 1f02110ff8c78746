# Two commands for a newcomer: `make run` and `make test`. Both create or reuse .venv.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run test test-stress test-cassandra lint bench clean postgres chromium kafka-jars \
	schema-registry

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/alertbutler run

# PostgreSQL (Debian's package) on 127.0.0.1:5432, trusting loopback, database `test`.
postgres:
	bash .ci/postgres.sh

# Debian's chromium for the portal's browser tests (Playwright drives it; no `playwright install`).
chromium:
	bash .ci/chromium.sh

# Apache Kafka's jars, resolved once from Maven Central with Maven and cached.
kafka-jars: $(STAMP)
	$(PY) -c "from alertbutler.broker import kafka_classpath; kafka_classpath()"

# A Confluent-compatible Schema Registry (Apicurio, a zip on Maven Central), fetched once
# with Maven and cached; the tests start it on loopback.
schema-registry: $(STAMP)
	$(PY) -c "from alertbutler.broker.schema_registry import registry_app; registry_app()"

# The tests on a local 3-node Apache Cassandra cluster take longer than the rest of the suite
# together on 2 cores (cluster start-up, one keyspace per test): `make test-cassandra` runs them.
PYTEST_MARKERS ?= not cassandra

test: $(STAMP) postgres chromium kafka-jars schema-registry
	$(VENV)/bin/ruff check services tests bench
	$(VENV)/bin/mypy
	$(PY) -m pytest -m "$(PYTEST_MARKERS)" $(PYTEST_ARGS)

# The L1 database and ingester tests on a 3-node Apache Cassandra cluster (replication 3).
test-cassandra: $(STAMP) postgres kafka-jars
	$(PY) -m pytest -m cassandra $(PYTEST_ARGS)

# The suite RUNS=3 times in a row beside HOGS=2 CPU-bound processes (a busy machine).
test-stress: $(STAMP)
	bash .ci/stress.sh

# mypy reads its settings and the files to check (services/) from pyproject.toml [tool.mypy]
lint: $(STAMP)
	$(VENV)/bin/ruff check services tests bench
	$(VENV)/bin/mypy

# The Kafka benchmarks run on both broker engines (embedded, then Apache Kafka) by default;
# bench/_*.py are their shared helpers, not benchmarks.
bench: $(STAMP) postgres kafka-jars
	for b in bench/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) alertbutler-data .pytest_cache
