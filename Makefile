# The two commands of the README:
#   make demo   set up the host, build a Debian trixie riscv64 image, run the
#               platform suite on native and on debian-trixie-riscv64, write a report
#   make test   set up the host and run every test (unit + integration) and the linters
# PROFILE=chroot sets up only what chroot targets need (see scripts/setup-host.sh).
# Python: the checkout's .venv when setup made one (an "externally managed" system
# Python, as on Debian 12), else python3.  Deferred (`?=`), so it is looked up after
# `setup` has run.
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
LEAPFROG ?= $(PYTHON) -m harness.cli
OUT ?= reports/demo

.PHONY: setup demo test unit integration lint

setup:
	scripts/setup-host.sh $(if $(PROFILE),--profile $(PROFILE))

demo: setup
	$(LEAPFROG) run --target native --target debian-trixie-riscv64 --suite platform --out $(OUT)

test: setup lint
	$(PYTHON) -m pytest -v -p no:cacheprovider tests

unit:
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/unit

integration:
	$(PYTHON) -m pytest -v -p no:cacheprovider -m integration tests

lint:
	$(PYTHON) -m ruff check harness tests suites bench
	$(PYTHON) -m mypy
