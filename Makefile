# The two commands of the README: `make run` and `make test`.
VENV  := .venv
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/install.sh
	scripts/install.sh
	touch $(STAMP)

run: install
	$(VENV)/bin/modelyard serve

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest

bench: install
	$(VENV)/bin/python bench/overhead.py

clean:
	rm -rf $(VENV) .modelyard .pytest_cache .mypy_cache .ruff_cache
