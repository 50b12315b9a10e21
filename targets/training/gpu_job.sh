#!/usr/bin/env bash
# One-shot GPU job: train every bundled model + evaluator in parallel, measure, export.
#
# Run ONCE on the GPU machine from the repository root (with .train/faces.npz carried):
#     bash targets/training/gpu_job.sh
# Needs only python3 with torch, numpy, pillow, safetensors (no kornia, no network).
# Writes into "$OUT" (at most 8 files, each < 16 MB):
#   job_log.txt            everything printed (environment, run_all progress, report)
#   report.json            per-model iterations, seconds, quality; per-job exit codes
#   bundled_weights.tar.gz weights/*.safetensors + JSON and markdown cards (split into
#                          bundled_weights.tar.gz.part-aa, -ab, ... when >= 15 MB)
#   runs_logs.tar.gz       per-job logs, train.json of every run, evaluator cards
# Time: TRAIN_SECONDS (default 330) of training, then ~30 s export/measure; the
# whole script stays under ~420 s. Local dry run on CPU: SMOKE=1 TRAIN_SECONDS=20 bash ...
set -u
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/disrupt_gpu_out}"
RUN_DIR="${RUN_DIR:-/tmp/disrupt_gpu_run}"
PACK="${PACK:-.train/faces.npz}"
TRAIN_SECONDS="${TRAIN_SECONDS:-330}"
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$RUN_DIR"
LOG="$OUT/job_log.txt"
START=$(date +%s)

{
  echo "== environment"
  date -u
  nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv 2>&1 | head -5
  python3 - <<'PY'
import sys, importlib
print("python", sys.version.split()[0])
for m in ("torch", "numpy", "PIL", "safetensors"):
    mod = importlib.import_module(m)
    print(m, getattr(mod, "__version__", "?"))
import torch
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
# every module the job runs must import without kornia or the network
for m in ("targets", "targets.bundled", "targets.training.run_all", "targets.training.quality",
          "targets.training.evaluators", "targets.training.faceswap_train",
          "targets.training.stargan_train", "targets.training.attgan_train",
          "targets.training.cyclegan_train"):
    importlib.import_module(m)
print("imports ok; kornia loaded:", "kornia" in sys.modules)
PY
  ls -la "$PACK"
  echo "== training (cap ${TRAIN_SECONDS}s per process)"
} >"$LOG" 2>&1

timeout --signal=TERM --kill-after=10 440 \
  python3 -m targets.training.run_all --pack "$PACK" --out "$RUN_DIR" \
    --seconds "$TRAIN_SECONDS" --grace 30 --threads 2 ${SMOKE:+--smoke} >"$RUN_DIR/report_stdout.json" 2>>"$LOG"
RC=$?
{
  echo "== run_all exit code $RC after $(( $(date +%s) - START ))s"
  cat "$RUN_DIR/report_stdout.json" 2>/dev/null | head -c 20000
} >>"$LOG" 2>&1

cp "$RUN_DIR/report.json" "$OUT/report.json" 2>>"$LOG" || echo "no report.json" >>"$LOG"
TAR="$RUN_DIR/bundled_weights.tar.gz"
if [ -f "$TAR" ]; then
  if [ "$(stat -c %s "$TAR")" -ge $((15 * 1024 * 1024)) ]; then
    split -b 15m -a 2 "$TAR" "$OUT/bundled_weights.tar.gz.part-"
  else
    cp "$TAR" "$OUT/"
  fi
else
  echo "no weights tar produced" >>"$LOG"
fi
tar -czf "$OUT/runs_logs.tar.gz" -C "$RUN_DIR" \
  $(cd "$RUN_DIR" && ls -d logs */train.json evaluators/*.json 2>/dev/null) 2>>"$LOG"
echo "== done in $(( $(date +%s) - START ))s; files:" >>"$LOG"
ls -la "$OUT" >>"$LOG"
exit $RC
