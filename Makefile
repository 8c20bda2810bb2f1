# Two entry points, each working on a fresh machine with Python 3.11:
#   make demo   - build a tiny random-weight Wan pipeline offline, record, analyze
#   make test   - the whole test suite, plus the analyzer in a torch-free environment
# torch is pinned through constraints.txt: a looser requirement pulls a multi-GB CUDA build.

PYTHON ?= python3
VENV := .venv
LAPTOP_VENV := .venv-laptop
DEMO := demo-output

.PHONY: demo test test-unit test-laptop clean

# The second install is the benchmarks' peer, with --no-deps: it declares torchvision, which it
# needs only to save PNGs and which would pull a second, CUDA torch; the rest it uses is above.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -c constraints.txt -e '.[record,test]'
	$(VENV)/bin/python -m pip install -q -c constraints.txt --no-deps attention-map-diffusers==1.0.0 protobuf
	touch $@

# The laptop install: no extras, so no torch, diffusers or transformers.
$(LAPTOP_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(LAPTOP_VENV)
	$(LAPTOP_VENV)/bin/python -m pip install -q .
	touch $@

demo: $(VENV)/.installed
	rm -rf $(DEMO)
	$(VENV)/bin/wan-record tiny-model $(DEMO)/tiny-wan
	$(VENV)/bin/wan-record --model $(DEMO)/tiny-wan --device cpu --dtype float32 \
		--prompt "A cat walks on the grass, under a cloudy sky." --negative-prompt "blurry, static" \
		--height 96 --width 160 --frames 17 --steps 8 --branch both $(DEMO)/store.zarr
	$(VENV)/bin/wan-analyze $(DEMO)/store.zarr -o $(DEMO)/analysis
	@echo
	@echo "demo store:    $(DEMO)/store.zarr"
	@echo "demo analysis: $(DEMO)/analysis (report: $(DEMO)/analysis/attention_analysis_report.md)"

test-unit: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q

# Records a store with the full install, then analyzes it where torch cannot be imported.
test-laptop: $(VENV)/.installed $(LAPTOP_VENV)/.installed
	rm -rf .laptop-check && mkdir -p .laptop-check
	$(VENV)/bin/wan-record tiny-model .laptop-check/tiny
	$(VENV)/bin/wan-record --model .laptop-check/tiny --device cpu --dtype float32 --prompt "a dog runs on the beach" \
		--height 32 --width 48 --frames 9 --steps 3 .laptop-check/store.zarr
	@! $(LAPTOP_VENV)/bin/python -c "import torch" 2>/dev/null || { echo "torch is installed in the laptop env"; exit 1; }
	$(LAPTOP_VENV)/bin/wan-analyze .laptop-check/store.zarr -o .laptop-check/analysis
	test -s .laptop-check/analysis/attention_analysis_report.md
	@echo "laptop check: wan-analyze ran without torch"
	rm -rf .laptop-check

test: test-unit test-laptop

clean:
	rm -rf $(VENV) $(LAPTOP_VENV) $(DEMO) .laptop-check
