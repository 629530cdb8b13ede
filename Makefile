# The two commands of the README: `make demo` and `make test`. Both install
# whatever is missing on a fresh Debian machine (Rust, Node and npm present)
# and are cheap to rerun once everything is there.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export PATH := $(HOME)/.cargo/bin:$(PATH)
export CHROMEDRIVER := /usr/bin/chromedriver
export CHROMIUM := /usr/bin/chromium

# wasm-bindgen-cli must match the wasm-bindgen crate exactly.
WASM_BINDGEN_VERSION := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/^version = "\(.*\)"$$/\1/p;}' Cargo.lock)
PACKAGE_VERSION := $(shell node -p "require('./js/package.json').version")
TARBALL := target/npm/annal-$(PACKAGE_VERSION).tgz

.PHONY: help setup build demo test lint test-native test-wasm test-js bench bench-server clean

help:
	@echo "make demo   build and serve the demo on http://127.0.0.1:8080, with annal-server on :8787"
	@echo "make test   lint and run every test (native, browser, package)"
	@echo "make bench  benchmarks against raw IndexedDB and Dexie: bench/results.json and BENCHMARKS.md"
	@echo "            (about 15 minutes; BENCH_FLAGS=--big adds the 1,000,000-event memory run, see bench/run.mjs)"

## Installation of missing tools ##############################################

setup: .setup/apt .setup/rust .setup/wasm-bindgen-$(WASM_BINDGEN_VERSION) .setup/wasm-pack node_modules/.package-lock.json

.setup/apt:
	@mkdir -p .setup
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || ! command -v wasm-opt >/dev/null; then \
	  echo "installing chromium, chromium-driver and binaryen"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver binaryen >/dev/null; \
	fi
	@# PostgreSQL 15 for the server tests, which start and stop their own cluster.
	@if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then \
	  echo "installing postgresql-15"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null; \
	fi
	@command -v python3 >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null; }
	@touch $@

.setup/rust:
	@mkdir -p .setup
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
	@touch $@

.setup/wasm-bindgen-$(WASM_BINDGEN_VERSION):
	@mkdir -p .setup
	@if [ "$$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $(WASM_BINDGEN_VERSION)" ]; then \
	  echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (a few minutes)"; \
	  cargo install -q wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --force; \
	fi
	@touch $@

.setup/wasm-pack:
	@mkdir -p .setup
	@command -v wasm-pack >/dev/null || { echo "installing wasm-pack (a few minutes)"; cargo install -q wasm-pack; }
	@touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

## Build ######################################################################

# The npm package: the wasm-release build bound by wasm-bindgen (pkg/,
# never committed) copied into js/wasm; the TypeScript type-checked by tsc,
# which writes the .d.ts files (they keep the docs); then esbuild bundles
# and minifies each entry point (`annal`, `annal/sw`, `annal/testing`)
# from js/src, with the wasm-bindgen glue, into js/dist, the code they
# share in chunks beside them, so a class is one class whichever entry an
# app imports it from. One gzipped stream instead of fifteen files makes
# the main entry's JavaScript 17 kB gzipped where it was 19. The .wasm
# goes next to the chunk that loads it (`new URL("annal_bg.wasm",
# import.meta.url)`), which the build checks. Then the packed tarball,
# annal-verify and annal-server, which the package tests run. (wasm-pack
# runs the Rust browser tests.)
# `make build WASM_BINDGEN_FLAGS=` keeps the wasm name section, so CPU
# profiles (node bench/run.mjs --cpu-profile DIR) name the Rust functions.
WASM_BINDGEN_FLAGS ?= --remove-name-section --remove-producers-section
# binaryen's wasm-opt from npm (version 132; Debian's 108 breaks the
# externref table): -O2 with no inlining of its own, since LLVM inlined
# already. 274 kB gzipped where the module straight from wasm-bindgen is
# 280 kB; -Oz, which inlines, made it 295 kB. --debuginfo keeps a name
# section that wasm-bindgen kept.
WASM_OPT_FLAGS ?= -O2 -aimfs=0 -ocimfs=0 -fimfs=0 --enable-reference-types --enable-bulk-memory --enable-mutable-globals --enable-nontrapping-float-to-int --enable-sign-ext --enable-multivalue $(if $(findstring remove-name-section,$(WASM_BINDGEN_FLAGS)),,--debuginfo)
build: setup
	cargo build -q --lib --target wasm32-unknown-unknown --profile wasm-release
	wasm-bindgen --target web $(WASM_BINDGEN_FLAGS) --out-dir pkg --out-name annal target/wasm32-unknown-unknown/wasm-release/annal.wasm
	node_modules/.bin/wasm-opt $(WASM_OPT_FLAGS) pkg/annal_bg.wasm -o pkg/annal_bg.wasm
	rm -rf js/wasm && mkdir -p js/wasm
	cp -r pkg/annal.js pkg/annal.d.ts pkg/snippets js/wasm/
	rm -rf js/dist && npx tsc -p js/tsconfig.json --emitDeclarationOnly
	npx esbuild js/src/index.ts js/src/sw.ts js/src/testing/index.ts --bundle --splitting --format=esm --minify --sourcemap --outdir=js/dist --outbase=js/src --log-level=warning --log-override:duplicate-object-key=silent
	cp pkg/annal_bg.wasm js/dist/
	@grep -l 'new URL("annal_bg.wasm",import.meta.url)' js/dist/*.js >/dev/null || { echo "no chunk in js/dist loads annal_bg.wasm from beside it"; exit 1; }
	mkdir -p target/npm && rm -rf target/npm/package
	npm pack ./js --pack-destination target/npm --silent >/dev/null
	tar -xzf $(TARBALL) -C target/npm
	cargo build -q --release -p annal-verify
	cargo build -q --release -p annal-server

## The two commands ###########################################################

# The demo on :8080, and annal-server on :8787 behind it (SQLite and token
# secret in target/demo/, kept across runs like the browser's stores).
demo: build
	node www/serve.mjs --port 8080 --annal-server 127.0.0.1:8787 --data-dir target/demo

test: setup lint test-native test-wasm test-js

lint:
	cargo fmt --all --check
	cargo clippy -q --workspace --all-targets -- -D warnings
	cargo clippy -q --lib --tests --target wasm32-unknown-unknown -- -D warnings

test-native:
	cargo test -q --workspace

# One test binary per context: window, dedicated worker, service worker;
# tests/wasm.sh says how a failure is reported and when a run is retried.
test-wasm:
	tests/wasm.sh

test-js: build
	node --test --test-concurrency=1 tests/js/

# annal next to raw IndexedDB and Dexie in headless Chromium (issue 6),
# written to bench/results.json and BENCHMARKS.md; flags in bench/run.mjs.
bench: build
	node bench/run.mjs $(BENCH_FLAGS)

# Push and pull throughput of annal-server on SQLite and PostgreSQL.
bench-server:
	cargo run -q --release -p annal-server --example bench_server

clean:
	rm -rf pkg js/wasm js/dist target/npm .setup
