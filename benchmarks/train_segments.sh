#!/usr/bin/env bash
# Train one bundled model's trainer in segments and keep its generator at milestones,
# so a study can follow quality and robustness against training length:
#     bash benchmarks/train_segments.sh MODEL PACK OUT_DIR DEADLINE_EPOCH [--set KEY=VALUE ...]
# MODEL is a trainer of targets/training (stargan, attgan, cyclegan, faceswap, pix2pix).
# Writes OUT_DIR/snapshots/g_<iterations>.pt and train_<iterations>.json, and a line per
# milestone in OUT_DIR/progress. Re-running continues (each segment resumes from
# OUT_DIR/MODEL/ckpt.pt). Batch 16; one thread unless THREADS=N; milestones from
# MILESTONES="500 1000 ..." when set. Example (the 96 px StarGAN of issue #10):
#     THREADS=2 bash benchmarks/train_segments.sh stargan PACK96 ~/.cache/disrupt-train/stargan96 \
#         "$(date -d '+90 minutes' +%s)"
set -u
MODEL=$1; PACK=$2; OUT=$3; DEADLINE=$4; shift 4
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS="${THREADS:-1}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python}"
MILESTONES="${MILESTONES:-500 1000 2000 3360 5000 7000 9000 11000 13000 15000 17000 20000}"
mkdir -p "$OUT/snapshots"
for IT in $MILESTONES; do
  if [ -f "$OUT/snapshots/g_$IT.pt" ]; then continue; fi
  LEFT=$((DEADLINE - $(date +%s)))
  if [ "$LEFT" -lt 120 ]; then echo "deadline reached before $IT"; break; fi
  "$PY" -m "targets.training.${MODEL}_train" --pack "$PACK" --out "$OUT" --seconds "$LEFT" \
    --iters "$IT" --device cpu --set batch_size=16 "$@" --resume >>"$OUT/log" 2>&1
  DONE=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['iterations'])" \
    "$OUT/$MODEL/train.json")
  cp "$OUT/$MODEL/final.pt" "$OUT/snapshots/g_$DONE.pt"
  cp "$OUT/$MODEL/train.json" "$OUT/snapshots/train_$DONE.json"
  echo "$(date -u +%T) reached $DONE" >>"$OUT/progress"
  if [ "$DONE" -lt "$IT" ]; then break; fi
done
