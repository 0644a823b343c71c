# SpikePack-HW. Every target bootstraps .venv from PyPI when it is missing or stale.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JOBS   ?= 2

.PHONY: all venv test test-train test-fast soak demo demo-digits report bench clean distclean

all: test

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,report]"
	touch $(STAMP)

venv: $(STAMP)

## make test: the whole suite (golden model, Amaranth unit tests, cocotb + Verilator benches)
test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) --dist loadgroup -m "not train" $(PYTEST_ARGS)

## make test-train: the tests that need the train extra (jax2onnx's patterns, retraining the
## committed MNIST CNN and comparing it): they install JAX, so 'make test' leaves them out
test-train: $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,report,train]"
	$(PY) -m pytest -m train $(PYTEST_ARGS)

## make test-fast: everything but the RTL benches
test-fast: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -m "not rtl and not train" $(PYTEST_ARGS)

## make soak: the random-configuration RTL regression over many configurations, for a release
## (SOAK_CONFIGS=N, default 50; SPIKEPACK_SEED replays; build/soak/report.json and report.md),
## then the loader's verdict against the parser's over 3,000 (configuration, stream) pairs
soak: $(STAMP)
	$(PY) -m spikepack.soak --jobs $(JOBS)
	SPIKEPACK_SWEEP=3000 $(PY) -m pytest -n $(JOBS) tests/test_loader_sweep.py

## make demo: the MNIST CNN (models/mnist_cnn.onnx) -> convert -> generate -> pack -> load ->
## all 1,000 held-out MNIST images on the RTL, bit-exact against the golden model (build/demo/)
demo: $(STAMP)
	$(PY) -m spikepack.demo

## make demo-digits: the same for the digits MLP and its 360 test images (build/demo-digits/)
demo-digits: $(STAMP)
	$(PY) -m spikepack.demo --network digits

## make report: Yosys synthesis and nextpnr place-and-route at seeds 1-3 (build/report/);
## SEEDS=1-8 places and routes at other seeds
report: $(STAMP)
	$(PY) -m spikepack.report $(if $(SEEDS),--seeds $(SEEDS))

## make bench: cycles and PE utilisation from RTL simulation (BENCHMARKS.md)
bench: $(STAMP)
	$(PY) -m spikepack.bench

clean:
	rm -rf build .pytest_cache .hypothesis

distclean: clean
	rm -rf $(VENV) *.egg-info
