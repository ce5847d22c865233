#!/usr/bin/env bash
# `make demo`: the local speech service, a live sample origin and dubhost, all on 127.0.0.1.
set -euo pipefail
DUBHOST=${1:?usage: demo.sh path/to/dubhost}
cd "$(dirname "$0")/.."
SPEECH=${SPEECH_LISTEN:-127.0.0.1:3010}
ORIGIN=${ORIGIN_LISTEN:-127.0.0.1:8080}
EDGE=${EDGE_LISTEN:-127.0.0.1:3000}
OUT=demo-out
mkdir -p "$OUT"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

wait_for() { # url
  for _ in $(seq 1 600); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.5
  done
  echo "demo: $1 did not come up" >&2; exit 1
}

if [ ! -f "$OUT/sample/master.m3u8" ]; then
  echo "demo: making the sample stream (English speech over music, H.264 test video)..."
  "$DUBHOST" make-sample --out "$OUT/sample" --duration 60
fi
"$DUBHOST" speech --listen "$SPEECH" > "$OUT/speech.log" 2>&1 & pids+=($!)
"$DUBHOST" origin --dir "$OUT/sample" --listen "$ORIGIN" > "$OUT/origin.log" 2>&1 & pids+=($!)
"$DUBHOST" serve --manifest spin.toml --listen "$EDGE" > "$OUT/dubhost.log" 2>&1 & pids+=($!)
wait_for "http://$SPEECH/healthz"
wait_for "http://$ORIGIN/live/master.m3u8"
wait_for "http://$EDGE/healthz"

SRC="http://$ORIGIN/live/master.m3u8"
ENC=$(python3 -c 'import sys,urllib.parse;print(urllib.parse.quote(sys.argv[1],safe=""))' "$SRC")
URL="http://$EDGE/dub/es/index.m3u8?src=$ENC"
# The dubbed audio rendition's own playlist, for tools that take one stream.
REND=$(curl -fsS "$URL" | grep '^#EXT-X-MEDIA:.*LANGUAGE="es"' | sed -n 's/.*URI="\([^"]*\)".*/\1/p' | head -1)
AUDIO_URL="http://$EDGE$REND"
cat <<MSG

  dub-edge demo is running (logs in $OUT/).
  Source (live, English):      $SRC
  Dubbed master (any player):  $URL
  Dubbed Spanish audio only:   $AUDIO_URL

  Record 30 s of the dubbed audio:
    ffmpeg -i '$AUDIO_URL' -t 30 -c copy dubbed.m4a
  or from the master, picking the Spanish rendition:
    ffmpeg -http_persistent 0 -i '$URL' -map 0:a:m:language:es -t 30 -c copy dubbed.m4a

  Play it:  ffplay '$URL'   (or open it in any HLS player)
  Ctrl-C stops everything.
MSG
wait
