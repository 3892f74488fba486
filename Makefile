# The two commands of the README: `make run` and `make test`.
VENV  := .venv
STAMP := $(VENV)/.installed

.PHONY: install run test lint audit lock bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/install.sh
	scripts/install.sh
	touch $(STAMP)

run: install
	$(VENV)/bin/modelyard serve

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/bandit -q -c pyproject.toml -r src

# Known vulnerabilities in the locked runtime dependencies (PyPI's advisory data). --strict turns
# a package the service could not look up into an error. Where PyPI's per-release JSON API (the
# service) cannot be reached at all, as in this project's build machines, the step says loudly
# that the lock was NOT checked and goes on (AUDIT=strict makes that an error; AUDIT=offline skips
# without probing). Accepted advisories are listed, each with its reason, in .pip-audit-ignore.
AUDIT ?= auto
AUDIT_PROBE := https://pypi.org/pypi/pip-audit/2.10.1/json
audit: install
ifeq ($(AUDIT),offline)
	@echo "make audit: AUDIT=offline: requirements.lock was NOT checked for known vulnerabilities" >&2
else
	@if [ "$(AUDIT)" = auto ] && ! $(VENV)/bin/python -c "import urllib.request as u; \
	  u.urlopen('$(AUDIT_PROBE)', timeout=10)" 2>/dev/null; then \
	  echo "make audit: WARNING: PyPI's advisory service is unreachable from here:" \
	    "requirements.lock was NOT checked for known vulnerabilities" >&2; \
	else \
	  $(VENV)/bin/pip-audit --strict --require-hashes --disable-pip --progress-spinner off \
	    -r requirements.lock $$(awk '!/^#/ && NF {print "--ignore-vuln", $$1}' .pip-audit-ignore); \
	fi
endif

test: lint audit
	$(VENV)/bin/pytest

# requirements.lock: the runtime dependencies (the main ones and the `local` extra) resolved
# within constraints.txt, each with its sha256 hashes; regenerate it after changing either file.
# Operators install with `pip install --require-hashes -r requirements.lock`.
lock: install
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links --extra local -c constraints.txt \
	  -o requirements.lock pyproject.toml

bench: install
	$(VENV)/bin/python bench/overhead.py

clean:
	rm -rf $(VENV) .modelyard .pytest_cache .mypy_cache .ruff_cache
