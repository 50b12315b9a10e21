#!/usr/bin/env bash
# Train one AttGAN arm from scratch in segments and keep its generator at milestones,
# so benchmarks/generator_robustness.py can follow robustness against training length:
#     bash benchmarks/attgan_arms.sh PACK64 OUT_DIR DEADLINE_EPOCH [--set KEY=VALUE ...]
# writes OUT_DIR/snapshots/g_<iterations>.pt and train_<iterations>.json. Re-running
# continues (each segment resumes from OUT_DIR/attgan/ckpt.pt). Batch 16 and one thread
# (THREADS=N for more), as targets/training/cpu_job.sh trained the bundled
# attgan.celeba64. Examples:
#     bash benchmarks/attgan_arms.sh PACK64 ~/.cache/disrupt-train/attgan_study/shortcut1 \
#         "$(date -d '+2 hours' +%s)"
#     bash benchmarks/attgan_arms.sh PACK64 ~/.cache/disrupt-train/attgan_study/shortcut0 \
#         "$(date -d '+2 hours' +%s)" --set shortcut_layers=0
set -u
PACK=$1; OUT=$2; DEADLINE=$3; shift 3
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS="${THREADS:-1}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python}"
mkdir -p "$OUT/snapshots"
for IT in 500 1000 2000 3360 5000 7000 9000 11000 13000 15000 17000 20000; do
  if [ -f "$OUT/snapshots/g_$IT.pt" ]; then continue; fi
  LEFT=$((DEADLINE - $(date +%s)))
  if [ "$LEFT" -lt 120 ]; then echo "deadline reached before $IT"; break; fi
  "$PY" -m targets.training.attgan_train --pack "$PACK" --out "$OUT" --seconds "$LEFT" \
    --iters "$IT" --device cpu --set batch_size=16 "$@" --resume >>"$OUT/log" 2>&1
  DONE=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['iterations'])" \
    "$OUT/attgan/train.json")
  cp "$OUT/attgan/final.pt" "$OUT/snapshots/g_$DONE.pt"
  cp "$OUT/attgan/train.json" "$OUT/snapshots/train_$DONE.json"
  echo "$(date -u +%T) reached $DONE" >>"$OUT/progress"
  if [ "$DONE" -lt "$IT" ]; then break; fi
done
