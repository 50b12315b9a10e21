#!/usr/bin/env bash
# Each bundled model attacked alone by the default pipeline at a ladder of PSNR floors:
# its own trade-off curve of disruption against face-region PSNR (issue #9). Shaped
# (the default perceptual shaping, cap 16/255) from 40 to 30 dB; below that the shaping's
# texture caps stop the change near 30.5 dB, so the lower floors run unshaped with a
# 32/255 cap: what it would take, visibly.
#     bash benchmarks/tradeoff_curves.sh FACES_DIR OUT_DIR [FIRST LIMIT]
#     python benchmarks/tradeoff_curves.py OUT_DIR/*.json --md OUT_DIR/curves.md --plot OUT_DIR/curves.png
# MODELS="..." picks the models (default: the default set and pix2pix.celeba96);
# THREADS (default 2). Existing results are kept, so a stopped run continues.
set -eu
FACES=$1; OUT=$2; FIRST=${3:-9401}; LIMIT=${4:-20}
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
MODELS="${MODELS:-stargan.celeba96 attgan.celeba96 cyclegan.utkface64 faceswap.lfw64 pix2pix.celeba96}"
mkdir -p "$OUT"
run() {  # NAME MODEL OPTIONS...
  local file="$OUT/$1.json" model=$2; shift 2
  [ -f "$file" ] && return 0
  "$PY" benchmarks/default_protection.py --images "$FACES" --first "$FIRST" --limit "$LIMIT" \
    --threads "${THREADS:-2}" --only "$model" "$@" --out "$file" >"$OUT/$(basename "$file" .json).log" 2>&1
  echo "$(date -u +%T) $(basename "$file")"
}
for M in $MODELS; do
  for DB in 40 36 33 30; do run "${M}_shaped_$DB" "$M" --psnr "$DB"; done
  for DB in 30 27 24 21; do run "${M}_unshaped_$DB" "$M" --psnr "$DB" --eps 32/255 --no-perceptual; done
done
