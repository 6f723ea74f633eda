# Two commands: `make demo` runs the engine on the bundled community, `make test` runs the suite.
# Both create .venv when missing and install what they need; each step says what it does.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.agora-installed
# where `make demo` serves: `make demo PORT=8010 HOST=0.0.0.0`, or AGORA_PORT / AGORA_HOST
HOST   ?= $(or $(AGORA_HOST),127.0.0.1)
PORT   ?= $(or $(AGORA_PORT),8000)

.PHONY: demo test lint bench-quality clean-data wrk fonts chromium node java docs docs-build

demo: $(STAMP)
	@echo ">> starting the demo: SQLite in ./agora-data, bundled Cardano community, API on $(HOST):$(PORT) (another port: make demo PORT=8010)"
	OPENBLAS_NUM_THREADS=1 $(BIN)/agora demo --host $(HOST) --port $(PORT)

test: $(STAMP) wrk fonts chromium node java
	@echo ">> checking that the code is ruff-formatted and lint-clean"
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	@echo ">> running the test suite (SQLite and PostgreSQL at 127.0.0.1:5432)"
	OPENBLAS_NUM_THREADS=1 $(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

# the docs site (MkDocs + Material, mkdocs.yml): the measured tables redrawn from bench/results/*.json,
# the REST reference from the OpenAPI document and the CLI reference from the CLI, then served
DOCS_PORT ?= 8001
docs: $(STAMP)
	@echo ">> redrawing the measured tables from bench/results/*.json"
	OPENBLAS_NUM_THREADS=1 $(BIN)/python docs/gen_tables.py
	@echo ">> writing the REST and CLI references and docs/scopes.md from the app and the CLI"
	OPENBLAS_NUM_THREADS=1 $(BIN)/python docs/gen_reference.py
	@echo ">> serving the docs on http://127.0.0.1:$(DOCS_PORT)/ (Ctrl-C stops it)"
	OPENBLAS_NUM_THREADS=1 $(BIN)/mkdocs serve -a 127.0.0.1:$(DOCS_PORT)

# what CI checks: the generated pages are fresh, and the site builds into site/ with --strict
docs-build: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(BIN)/python docs/gen_tables.py --check
	OPENBLAS_NUM_THREADS=1 $(BIN)/python docs/gen_reference.py --check
	OPENBLAS_NUM_THREADS=1 $(BIN)/mkdocs build --strict

bench-quality: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(BIN)/python bench/quality.py

clean-data:
	rm -rf agora-data

# the HTTP load generator of bench/serve_load.py and bench/ingest_load.py (their tests run it)
wrk:
	@command -v wrk >/dev/null || { \
		echo ">> wrk (a C HTTP load generator) is missing: installing it with apt-get"; \
		SUDO=$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq wrk; }

$(BIN)/python:
	@if ! $(PYTHON) -c "import venv, ensurepip" 2>/dev/null; then \
		echo ">> python3-venv is missing: installing it with apt-get"; \
		SUDO=$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq python3-venv; \
	fi
	@echo ">> creating the virtual environment in $(VENV)"
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	@echo ">> installing Agora and its dependencies into $(VENV) (pip)"
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)
	@echo ">> the CLI is at $(BIN)/agora"

# fonts the image tests draw Chinese and English text with (tests/vision render what OCR reads)
fonts:
	@test -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc -a -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf || { \
		echo ">> fonts for the image tests are missing: installing fonts-wqy-microhei and fonts-dejavu-core with apt-get"; \
		SUDO=$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq fonts-wqy-microhei fonts-dejavu-core; }

# the browser the console's end-to-end tests drive (tests/web/console, Playwright for Python)
chromium:
	@test -x /usr/bin/chromium || { \
		echo ">> chromium (for the console's browser tests) is missing: installing it with apt-get"; \
		SUDO=$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

# Node and npm for gorsejs, Gorse's JavaScript client (tests/gorse installs the package itself)
node:
	@command -v node >/dev/null && command -v npm >/dev/null || { \
		echo ">> node and npm (for the Gorse JavaScript client's tests) are missing: installing them with apt-get"; \
		SUDO=$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq nodejs npm; }

# the Java runtime pyspark starts its JVM on, and the JDBC drivers Spark reads the store with
# (tests/db/spark run Spark in local[2] mode)
java:
	@command -v java >/dev/null && test -f /usr/share/java/postgresql.jar -a -f /usr/share/java/sqlite-jdbc.jar || { \
		echo ">> java and the JDBC drivers (for --engine spark and its tests) are missing: installing openjdk-17-jre-headless, libpostgresql-jdbc-java and libxerial-sqlite-jdbc-java with apt-get"; \
		SUDO=$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq openjdk-17-jre-headless libpostgresql-jdbc-java libxerial-sqlite-jdbc-java; }
