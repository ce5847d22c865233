# dub-edge: `make demo` runs a dubbed live stream locally; `make test` runs every check.
# One target directory outside the clone keeps rebuilds incremental across clones.
CARGO_TARGET_DIR ?= $(HOME)/.cache/dub-edge/target
export CARGO_TARGET_DIR
CARGO ?= cargo
WASM_OUT := $(CARGO_TARGET_DIR)/wasm32-wasip2/wasm
DUBHOST := $(CARGO_TARGET_DIR)/release/dubhost
# Every native command selects the same features, so they share one wasmtime build (the
# benches' native/wasm/ffmpeg table links wasmtime like the host does).
FEATURES := --features dub-benches/wasm

.PHONY: all setup build components host demo test bench fmt clippy wit

all: build

setup:
	@bash .ci/setup.sh

## build: the host (dubhost) and both components (build/dub_edge.wasm, build/dub_media.wasm)
build: components host

components:
	$(CARGO) build -p dub-media-component --target wasm32-wasip2 --profile wasm
	$(CARGO) build -p dub-edge --target wasm32-wasip2 --profile wasm
	@mkdir -p build
	cp $(WASM_OUT)/dub_media_component.wasm build/dub_media.wasm
	cp $(WASM_OUT)/dub_edge.wasm build/dub_edge.wasm

# All native targets at once (tests and benches included): the same feature set `cargo test`
# resolves, so the host (wasmtime) is compiled once, not once per command.
host:
	$(CARGO) build --release --all-targets $(FEATURES)

## wit: print the WIT of the built components
wit: components
	wasm-tools component wit build/dub_media.wasm
	wasm-tools component wit build/dub_edge.wasm

## demo: speech service + sample live origin + dubhost, prints the dubbed URL and an ffmpeg command
demo: setup build
	@bash .ci/demo.sh "$(DUBHOST)"

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --release --all-targets $(FEATURES) -- -D warnings
	$(CARGO) clippy -p dub-edge -p dub-media-component --target wasm32-wasip2 --profile wasm -- -D warnings

## test: every check (fmt, clippy -D warnings, unit, integration and end-to-end tests)
test: setup fmt build clippy
	DUBHOST_BIN="$(DUBHOST)" $(CARGO) test --release --no-fail-fast $(FEATURES)

## bench: criterion benches of the media path, then the native / wasm / ffmpeg table
bench: components
	$(CARGO) bench -p dub-benches
	$(CARGO) run --release --bin media-table $(FEATURES)
