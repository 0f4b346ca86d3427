# mailcheck: `make demo` and `make test` are all a newcomer needs (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LAB := .lab
LAB_PORT ?= 5354
LAB_NS := 127.0.0.1:$(LAB_PORT)
# The lab's own blocklists (the shipped ones are real zones the offline lab does not serve).
LAB_LISTS := fixtures/dnsbl/lab-lists.toml
# Debian packages the tests use: a validating resolver (DNSSEC/AD tests), Postfix (queue,
# relay probes) with Cyrus SASL modules and openssl for its AUTH/TLS listeners.
DEBS := unbound postfix libsasl2-modules openssl

.PHONY: all install debs lint test demo lab-up lab-down bench clean

all: test

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); $(MAKE) --no-print-directory python-venv \
	  && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

# Debian ships venv/ensurepip separately; install it when we may.
.PHONY: python-venv
python-venv:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv python3-pip >/dev/null; \
	else echo "mailcheck: install python3-venv (apt-get install python3-venv)" >&2; exit 2; fi

install: $(BIN)/.installed

# Install the Debian packages the tests need when running as root; otherwise the tests that
# need them skip locally (and fail under CI=true).
debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	    apt-get install -y -q --no-install-recommends $$missing >/dev/null 2>&1 \
	      || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $$missing >/dev/null; }; \
	  else echo "mailcheck: not root, not installing:$$missing (tests that need them will skip)"; fi; \
	fi

lint: install
	$(BIN)/ruff check mailcheck tests bench
	$(BIN)/mypy mailcheck tests bench

test: install debs lint
	$(BIN)/python -m pytest -q

lab-up: install
	@mkdir -p $(LAB)
	@if [ -f $(LAB)/dns.pid ] && kill -0 $$(cat $(LAB)/dns.pid) 2>/dev/null; then \
	  echo "lab DNS already running on $(LAB_NS)"; exit 0; fi; \
	rm -f $(LAB)/dns.ready; \
	$(BIN)/python -m tests.lab.dnsserver --zones fixtures/zones --port $(LAB_PORT) \
	  --ready-file $(LAB)/dns.ready >$(LAB)/dns.log 2>&1 & echo $$! > $(LAB)/dns.pid; \
	$(BIN)/python -m tests.lab.wait_ready $(LAB)/dns.ready --pid $$(cat $(LAB)/dns.pid) --timeout 10 \
	  || { cat $(LAB)/dns.log; exit 3; }; \
	echo "lab DNS serving fixtures/zones on $(LAB_NS)"

lab-down:
	@if [ -f $(LAB)/dns.pid ]; then kill $$(cat $(LAB)/dns.pid) 2>/dev/null || true; rm -f $(LAB)/dns.pid $(LAB)/dns.ready; fi
	@echo "lab stopped"

# The lab zones' MX hosts are documentation addresses nobody serves: --no-smtp. The TLS lab
# (real Postfix listeners, a validating unbound) follows, when run as root.
demo: lab-up debs
	@echo; echo "== a well-configured domain =="; echo
	$(BIN)/mailcheck domain good.test --nameserver $(LAB_NS) --ip 192.0.2.20 --dnsbl-config $(LAB_LISTS) --no-smtp
	@echo; echo "== a broken domain (exit code 1: it has errors) =="; echo
	$(BIN)/mailcheck domain broken.test --nameserver $(LAB_NS) --dnsbl-config $(LAB_LISTS) --no-smtp || [ $$? -eq 1 ]
	@echo
	$(BIN)/python -m tests.lab.tls_demo
	@echo; echo "The lab keeps running on $(LAB_NS); 'make lab-down' stops it. Try:"
	@echo "  . $(BIN)/activate; export MAILCHECK_NAMESERVER=$(LAB_NS) MAILCHECK_DNSBL_CONFIG=$(LAB_LISTS)"
	@echo "  mailcheck domain nullmx.test"

bench: install
	$(BIN)/python bench/domain.py
	$(BIN)/python bench/batch.py
	$(BIN)/python bench/queue_shape.py
	$(BIN)/python -m bench.tls

clean: lab-down
	rm -rf $(VENV) $(LAB) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
