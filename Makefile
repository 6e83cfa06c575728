# Two commands on a fresh machine: `make run` and `make test` (see README.md).
# `make run PORT=9000 HOST=0.0.0.0` serves on another port, or on every interface.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: run test lint typecheck bench screenshots system-deps weights clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/gateway serve --host $(HOST) --port $(PORT)

# Real parts for the tests: redis-server (Sentinel too), Debian's chromium (for Playwright), graphviz (flow diagrams)
# and openssl (the certificates of the TLS Sentinel test).
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v dot >/dev/null || missing="$$missing graphviz"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check gateway tests bench
	$(BIN)/ruff format --check gateway tests bench
	$(BIN)/mypy

# Two workers (CI's cores); TEST_WORKERS=0 runs the suite in one process. The 30 slowest tests are listed at the end.
TEST_WORKERS ?= 2

test: system-deps $(VENV)/.installed-test lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --durations=30

# The README's pictures (docs/*.png), from a browser test left out of `make test`.
screenshots: system-deps $(VENV)/.installed-test
	GATEWAY_SCREENSHOTS=docs $(BIN)/python -m pytest -q -m screenshots tests/e2e/test_console_screenshots.py

# Engine figures, the hand-off at 1,000 and 10,000 open conversations, then the gateway under load against the
# floor (bench/README.md); BENCH_ARGS scales the last, e.g. BENCH_ARGS="--open 2000 --duration 10" for a quick
# look; HANDOFF_ARGS the hand-off's, e.g. HANDOFF_ARGS="--samples 50 --stores sqlite".
bench: system-deps $(VENV)/.installed
	$(BIN)/python bench/engine.py
	OMP_NUM_THREADS=1 $(BIN)/python bench/understanding.py
	$(BIN)/python bench/sealing.py
	$(BIN)/python bench/handoff.py $(HANDOFF_ARGS)
	$(BIN)/python bench/load.py $(BENCH_ARGS)

# The shipped understanding weights, from the corpus (docs/understanding.md, "Training"): the first heads by L-BFGS
# (converged since the thirty-first round but in the thirty-sixth, whose risk and topic fits stopped at 1,000
# iterations; the cap is 2,000 since the thirty-seventh) at L2 3e-4 on train.jsonl, the authors' files (DEV_CORPUS:
# dev11a … dev49d) and the training files train7a … train7d, train9a … train9d and train10a … train10d (train9 and
# train10 since the forty-fourth round), the second opinion's risk head by L-BFGS on the
# five older train*.jsonl and the same files (the two fits side by side, each on one core: the same commands as one
# after the other; their identity with a sequential build is argued, not rebuilt to check), then the two in one file;
# then the long reader (since the thirty-fourth round): a risk head for messages of 40 words or more read whole, at L2
# 1e-4 on the second corpus's long messages (since the thirty-sixth round the second corpus holds dev35a … dev40d,
# which the long reader alone read in the thirty-fifth, since the thirty-seventh dev41a … dev41d, since the fortieth
# dev42a … dev45d, since the forty-first dev46a … dev46d, since the forty-fourth dev47a … dev49d), its scores
# divided by 0.4, the pieces' reading kept from 0.95 up. WEIGHTS_CACHE keeps the embeddings between runs; every text
# (the second corpus holds the first's) is embedded once first, half on each core (`understanding embed --part`).
# The folds that only measure are skipped (--no-cv: the same files to the bit, a fifth of the work); `make weights
# WEIGHTS_CV=` prints the cross-validated figures too.
WEIGHTS_CACHE ?= $(CURDIR)/var/e5-cache
WEIGHTS_CV ?= --no-cv
DEV_CORPUS := corpus/dev11a.jsonl corpus/dev11b.jsonl corpus/dev11c.jsonl corpus/dev12d.jsonl corpus/dev12e.jsonl corpus/dev12f.jsonl corpus/dev12g.jsonl \
  $(foreach f,dev15a dev15b dev15c dev15d dev16a dev16b dev16c dev16d dev17a dev17b dev18a dev18b dev19a dev19b dev19c dev20a dev20b dev21a dev21b dev22a dev22b \
  dev23a dev23b dev23c dev23d dev24a dev24b dev24c dev24d dev25a dev25b dev25c dev25d dev26a dev26b dev26c dev26d \
  dev27a dev27b dev27c dev27d dev28a dev28b dev28c dev28d \
  dev29a dev29b dev29c dev29d dev30a dev30b dev30c dev30d dev31a dev31b dev31c dev31d dev32a dev32b dev32c dev32d \
  dev33a dev33b dev33c dev33d dev34a dev34b dev34c dev34d \
  dev35a dev35b dev35c dev35d dev36a dev36b dev36c dev36d dev37a dev37b dev37c dev37d \
  dev38a dev38b dev38c dev38d dev39a dev39b dev39c dev39d dev40a dev40b dev40c dev40d \
  dev41a dev41b dev41c dev41d dev42a dev42b dev42c dev42d dev43a dev43b dev43c dev43d \
  dev44a dev44b dev44c dev44d dev45a dev45b dev45c dev45d dev46a dev46b dev46c dev46d \
  dev47a dev47b dev47c dev47d dev48a dev48b dev48c dev48d dev49a dev49b dev49c dev49d,corpus/$(f).jsonl)
LONG_CORPUS := $(foreach f,train7a train7b train7c train7d train9a train9b train9c train9d \
  train10a train10b train10c train10d,corpus/$(f).jsonl)
FIRST_CORPUS := corpus/train.jsonl $(DEV_CORPUS) $(LONG_CORPUS)
SECOND_CORPUS := corpus/train.jsonl corpus/train_short.jsonl corpus/train_long.jsonl corpus/train_negatives.jsonl corpus/train6.jsonl $(DEV_CORPUS) $(LONG_CORPUS)
weights: $(VENV)/.installed
	mkdir -p var/weights
	OMP_NUM_THREADS=1 $(BIN)/gateway understanding embed --cache $(WEIGHTS_CACHE) --part 0/2 --corpus $(SECOND_CORPUS) & first=$$!; \
	OMP_NUM_THREADS=1 $(BIN)/gateway understanding embed --cache $(WEIGHTS_CACHE) --part 1/2 --corpus $(SECOND_CORPUS); \
	second=$$?; wait $$first; test $$? = 0 && test $$second = 0
	OMP_NUM_THREADS=1 $(BIN)/gateway understanding train --cache $(WEIGHTS_CACHE) $(WEIGHTS_CV) --optimizer lbfgs --l2 3e-4 \
	  --corpus $(FIRST_CORPUS) -o var/weights/first.npz > var/weights/first.log 2>&1 & first=$$!; \
	OMP_NUM_THREADS=1 $(BIN)/gateway understanding train --cache $(WEIGHTS_CACHE) $(WEIGHTS_CV) --optimizer lbfgs --l2 3e-4 \
	  --corpus $(SECOND_CORPUS) -o var/weights/second.npz; second=$$?; wait $$first; status=$$?; \
	cat var/weights/first.log; test $$status = 0 && test $$second = 0
	$(BIN)/gateway understanding combine var/weights/first.npz var/weights/second.npz -o var/weights/combined.npz
	OMP_NUM_THREADS=1 $(BIN)/gateway understanding long var/weights/combined.npz --cache $(WEIGHTS_CACHE) --l2 1e-4 \
	  --scale 0.4 --keep 0.95 --corpus $(SECOND_CORPUS) -o gateway/understanding/weights.npz
	sha256sum var/weights/first.npz var/weights/second.npz var/weights/combined.npz gateway/understanding/weights.npz

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
