# CallVault: the two commands the README gives are `make demo` and `make test`.
# Both set up everything they need on a fresh Debian machine: system packages, a virtualenv, Python packages.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck unit system-deps venv native clean mediasoup-worker s3rver

system-deps:
	@missing=""; \
	command -v ffmpeg >/dev/null 2>&1 || missing="$$missing ffmpeg"; \
	command -v janus >/dev/null 2>&1 || missing="$$missing janus"; \
	command -v janus-pp-rec >/dev/null 2>&1 || missing="$$missing janus-tools"; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v mkvmerge >/dev/null 2>&1 || missing="$$missing mkvtoolnix"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	command -v age >/dev/null 2>&1 || missing="$$missing age"; \
	command -v tshark >/dev/null 2>&1 || missing="$$missing tshark"; \
	command -v espeak-ng >/dev/null 2>&1 || missing="$$missing espeak-ng"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

# The per-packet modules compiled with mypyc beside their sources (docs/native.md), again whenever one of them
# changes; where nothing can be compiled (no C compiler) build_native.py says so and the sources run.
NATIVE_SOURCES := build_native.py $(wildcard recorder/native.py recorder/rtp/*.py recorder/assembly/*.py \
	recorder/codecs/*.py recorder/mux/*.py recorder/ingest/*.py)
$(BIN)/.native: $(BIN)/.installed $(NATIVE_SOURCES)
	$(BIN)/python build_native.py
	touch $@

native: $(BIN)/.native

# The real thing on one machine, as root: Janus in a network namespace, two WebRTC publishers, callvault
# serve with the local store, signed manifests, a composite and a webhook receiver (`callvault demo --help`).
demo: system-deps venv native
	$(BIN)/pip install -q -e '.[demo,transcribe]'
	$(BIN)/callvault demo

LINT_PATHS := recorder janus_bridge postprocess tests bench build_native.py deploy integrations

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

typecheck: venv
	$(BIN)/mypy

# A real mediasoup worker for tests/mediasoup: built once (about 8 minutes on 2 cores) into
# ~/.cache/callvault/mediasoup-worker-VERSION, then reused; the package's node_modules installed against it.
mediasoup-worker: system-deps
	@worker=$$(integrations/mediasoup/scripts/build-worker.sh) && cd integrations/mediasoup && \
	{ [ -f node_modules/mediasoup/package.json ] || \
	  MEDIASOUP_WORKER_BIN=$$worker npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; }

# s3rver (npm, pinned in tests/lifecycle/s3rver): a second S3 server for the export-to-a-customer's-bucket test.
s3rver: system-deps
	@cd tests/lifecycle/s3rver && { [ -x node_modules/.bin/s3rver ] || \
	  npm ci --no-audit --no-fund --loglevel=error; }

unit: system-deps venv native mediasoup-worker s3rver
	$(BIN)/python -m pytest -q -ra

test: system-deps venv lint typecheck unit

clean:
	rm -rf $(VENV) demo-out bench-out .pytest_cache .mypy_cache .ruff_cache build
	find recorder -name '*.so' -delete; rm -f recorder/native_build.json
