# relcli: two commands from a fresh clone.
#   make demo   build the virtualenv, then run the whole chain on sample_data/
#   make test   build the virtualenv, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# With no NVIDIA GPU visible, pin the CPU build of torch (2.13.0 is a CPU wheel on this
# project's machines); with one, take the default (CUDA) build. Override with TORCH_SPEC=...
# and, elsewhere, TORCH_INDEX=https://download.pytorch.org/whl/cpu for PyTorch's CPU index.
TORCH_SPEC ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
TORCH_INDEX ?=
PIP_TORCH_ARGS := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)

.PHONY: venv demo test bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(PIP_TORCH_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test,text]"
	touch $@

demo: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(MAKE) --no-print-directory -C examples report

test: venv
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python benchmarks/bench_io.py --quick
	$(BIN)/python benchmarks/bench_kernels.py --quick

clean:
	rm -rf $(VENV) examples/out
