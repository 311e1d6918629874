# The two commands of the README:
#   make demo   set up the host, build a Debian trixie riscv64 image, run the
#               platform suite on native and on debian-trixie-riscv64, write a report
#   make test   set up the host and run every test (unit + integration) and the linters
PYTHON ?= python3
OUT ?= reports/demo

.PHONY: setup demo test unit integration lint

setup:
	scripts/setup-host.sh

demo: setup
	leapfrog run --target native --target debian-trixie-riscv64 --suite platform --out $(OUT)

test: setup lint
	$(PYTHON) -m pytest -v -p no:cacheprovider tests

unit:
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/unit

integration:
	$(PYTHON) -m pytest -v -p no:cacheprovider -m integration tests

lint:
	ruff check harness tests suites bench
	mypy
