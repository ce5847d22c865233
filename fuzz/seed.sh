#!/usr/bin/env bash
# Copy seed inputs from the shared corpus into fuzz/corpus/<target>/ (git-ignored).
# Usage: fuzz/seed.sh [corpus-dir]   (default: ../../shared/corpus relative to this script)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
corpus="${1:-$here/../../shared/corpus}"
corpus="$(cd "$corpus" && pwd)"
out="$here/corpus"
mkdir -p "$out"/{mp4_boxes,fmp4_segment,hls_playlist,ts_segment}

# Name each copy after its corpus path so reruns overwrite instead of duplicating.
name() { echo "$1" | sed "s|^$corpus/||; s|^.*/angel-one-init|angel-one-init|; s|/|__|g"; }

# mp4_boxes: every MP4-ish file (inits, segments, self-contained files, malformed).
find "$corpus/hls-fmp4" "$corpus/mp4-malformed" -type f \
  \( -name '*.mp4' -o -name '*.m4s' -o -name '*.m4a' -o -name '*.mov' -o -name '*.heic' \
     -o -name '*.avif' -o -name 'clusterfuzz-*' \) -print0 |
  while IFS= read -r -d '' f; do cp "$f" "$out/mp4_boxes/$(name "$f")"; done

# fmp4_segment: [u16 BE init length][init][media] for every (init, segment) pair.
pair() { # init media [media-offset media-len]
  local init="$1" media="$2" dst
  dst="$out/fmp4_segment/$(name "$init")+$(basename "$media")"
  local n
  n=$(stat -c %s "$init")
  if [ "$n" -gt 65535 ]; then echo "skip $init: $n bytes" >&2; return; fi
  {
    printf "\\x$(printf %02x $((n >> 8)))\\x$(printf %02x $((n & 255)))"
    cat "$init"
    if [ $# -ge 4 ]; then head -c "$(($3 + $4))" "$media" | tail -c +"$(($3 + 1))"; else cat "$media"; fi
  } > "$dst"
}
f="$corpus/hls-fmp4"
pair "$f/shaka-clear-encrypted-hls/audio-init-clear.mp4" "$f/shaka-clear-encrypted-hls/audio-s1.mp4"
pair "$f/shaka-clear-encrypted-hls/audio-init-clear.mp4" "$f/shaka-clear-encrypted-hls/audio-s2.mp4"
for s in 1 2 3; do
  pair "$f/shaka-clear-encrypted-hls/audio-init-encrypted.mp4" "$f/shaka-clear-encrypted-hls/audio-enc-s$s.mp4"
done
pair "$f/shaka-clear-encrypted-hls/video-init-clear.mp4" "$f/shaka-clear-encrypted-hls/video-s1.mp4"
pair "$f/shaka-hls-mp4-muxed-aac-h264/init.mp4" "$f/shaka-hls-mp4-muxed-aac-h264/hls11.m4s"
pair "$f/shaka-misc/multiple-trun-init.mp4" "$f/shaka-misc/multiple-trun-segment.mp4"
pair "$f/shaka-misc/sintel-audio-init.mp4" "$f/shaka-misc/sintel-audio-segment.mp4"
pair "$f/shaka-misc/sintel-video-init.mp4" "$f/shaka-misc/sintel-video-segment.mp4"
pair "$f/videojs-segments/mp4AudioInit.mp4" "$f/videojs-segments/mp4Audio.mp4"
pair "$f/videojs-segments/mp4MuxedInit.mp4" "$f/videojs-segments/mp4Muxed.mp4"
# Self-contained fragmented files: the whole file as init and as media.
for m in "$f"/mp4-atom/*.mp4; do pair "$m" "$m"; done
# Angel One (on-demand CMAF): init is bytes 0..786, then sidx and 16 fragments; seed the first
# ~200 KB of fragments.
angel="$f/shaka-angel-one-speech/audio_en_2c_128k_aac.mp4"
tmp="$(mktemp -d)"
head -c 786 "$angel" > "$tmp/angel-one-init.mp4"
pair "$tmp/angel-one-init.mp4" "$angel" 786 200000
rm -rf "$tmp"

# hls_playlist: every playlist and playlist fixture.
find "$corpus/playlists" -type f -print0 |
  while IFS= read -r -d '' f; do cp "$f" "$out/hls_playlist/$(name "$f")"; done
find "$corpus"/hls-* -type f -name '*.m3u8' -print0 |
  while IFS= read -r -d '' f; do cp "$f" "$out/hls_playlist/$(name "$f")"; done

# ts_segment: every TS file (and the misnamed ADTS ones, which must be refused cleanly).
find "$corpus/hls-ts" -type f \( -name '*.ts' -o -name '*.aac' \) -print0 |
  while IFS= read -r -d '' f; do cp "$f" "$out/ts_segment/$(name "$f")"; done

# aac_raw: ADTS streams (corpus, and ffmpeg-made ones that use short windows, PNS, intensity,
# mono and 5.1) as [ASC length][ASC][(u16 BE length, access unit)...], 48 units per seed.
mkdir -p "$out/aac_raw"
tmp="$(mktemp -d)"
adts=("$corpus"/hls-ts/videojs-segments/*.aac)
if command -v ffmpeg >/dev/null; then
  ffmpeg -v error -f lavfi -i "sine=f=440:d=2" -f lavfi -i "anoisesrc=d=2:a=0.3" \
    -filter_complex "[0][1]amix=inputs=2,aformat=channel_layouts=stereo" -ar 48000 \
    -c:a aac -aac_pns 1 -aac_is 1 -b:a 96k "$tmp/pns-is.aac" && adts+=("$tmp/pns-is.aac")
  ffmpeg -v error -f lavfi -i "aevalsrc=if(lt(mod(t\,0.25)\,0.005)\,0.8*sin(2000*t)\,0):d=2" \
    -ar 44100 -ac 1 -c:a aac "$tmp/clicks-mono.aac" && adts+=("$tmp/clicks-mono.aac")
  ffmpeg -v error -f lavfi -i "sine=f=300:d=2" -af "aformat=channel_layouts=5.1" \
    -ar 48000 -c:a aac -b:a 256k "$tmp/51.aac" && adts+=("$tmp/51.aac")
fi
for a in "${adts[@]}"; do
  python3 - "$a" "$out/aac_raw/$(basename "$a").bin" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
i, aus, asc = 0, [], None
while i + 7 <= len(d) and len(aus) < 48:
    if d[i] != 0xFF or d[i + 1] & 0xF0 != 0xF0:
        i += 1
        continue
    prot_absent = d[i + 1] & 1
    prof, sfi = d[i + 2] >> 6, (d[i + 2] >> 2) & 15
    chc = ((d[i + 2] & 1) << 2) | (d[i + 3] >> 6)
    n = ((d[i + 3] & 3) << 11) | (d[i + 4] << 3) | (d[i + 5] >> 5)
    h = 7 if prot_absent else 9
    if n < h or i + n > len(d):
        break
    asc = asc or bytes([((prof + 1) << 3) | (sfi >> 1), ((sfi & 1) << 7) | (chc << 3)])
    aus.append(d[i + h:i + n])
    i += n
if asc:
    out = bytes([len(asc)]) + asc + b"".join(len(a).to_bytes(2, "big") + a for a in aus)
    open(sys.argv[2], "wb").write(out)
PY
done
rm -rf "$tmp"

for t in "$out"/*/; do echo "$(basename "$t"): $(ls "$t" | wc -l) files"; done
