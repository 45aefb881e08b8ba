# Two set-up commands: `make run` and `make test`. `make bench` prints the benchmarks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# An NVIDIA GPU gets the default (CUDA) torch build; elsewhere pin the CPU build so that CI
# and laptops do not download several GB of CUDA libraries.
HAS_NVIDIA := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
ifeq ($(HAS_NVIDIA),yes)
TORCH_SPEC ?= torch>=2.4
else
TORCH_SPEC ?= torch==2.13.0
endif
# PyPI's Linux torch wheels carry CUDA (several GB); TORCH_INDEX=https://download.pytorch.org/whl/cpu
# takes the small CPU build from PyTorch's own index instead (empty: the configured indexes only).
TORCH_INDEX ?=

SAMPLE := resources/sample.png

.PHONY: run test bench clean package

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e .
	$(if $(HAS_NVIDIA),$(BIN)/python -m pip install --quiet -e ".[restore]",$(BIN)/python -m pip install --quiet --no-deps "spandrel>=0.4,<0.5" "spandrel-extra-arches>=0.2,<0.3")
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed-run
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

run: $(VENV)/.installed-run
	$(BIN)/sd-studio $(SAMPLE)

test: $(VENV)/.installed-dev
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run_all.py

# A self-contained folder dist/sd-studio/ (PyInstaller; see packaging/README.md).
$(VENV)/.installed-package: packaging/requirements.txt $(VENV)/.installed-run
	$(BIN)/python -m pip install --quiet -r packaging/requirements.txt
	touch $@

# The built app's own checks run right after the build (its generation must match the source's); a build
# that cannot generate fails here, not in the hands of a user.
package: $(VENV)/.installed-package $(VENV)/.installed-dev
	$(BIN)/pyinstaller --noconfirm --distpath dist --workpath build/pyinstaller packaging/sd-studio.spec
	SD_STUDIO_REQUIRE_BUILD=1 QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_packaging.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
