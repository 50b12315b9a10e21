#!/usr/bin/env bash
# Staged CPU training of every bundled model and evaluator (2 cores: two lanes of one
# thread each). Every trainer checkpoints about once a minute; re-running this script
# with RESUME=1 continues where the last stage stopped. Seconds per stage are
# arguments so later sessions can give the models more time:
#     bash targets/training/cpu_job.sh RUN_DIR STARGAN_S FACESWAP_S CYCLEGAN_S ATTGAN_S
# Then export, measure and install the weights:
#     python -m targets.training.run_all --pack .train/faces.npz --out RUN_DIR \
#         --seconds 0 --skip-training
set -u
cd "$(dirname "$0")/../.."
RUN="${1:-.train/cpu_run}"
STARGAN_S="${2:-5000}"
FACESWAP_S="${3:-900}"
CYCLEGAN_S="${4:-2400}"
ATTGAN_S="${5:-1800}"
PACK="${PACK:-.train/faces.npz}"
RESUME="${RESUME:+--resume}"
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
PY="${PYTHON:-python}"
mkdir -p "$RUN/logs"

lane_a() {
  "$PY" -m targets.training.evaluators --kind celeba --pack "$PACK" --out "$RUN/evaluators" \
    --seconds 240 --threads 1 --device cpu >"$RUN/logs/evaluator_celeba.log" 2>&1
  "$PY" -m targets.training.stargan_train --pack "$PACK" --out "$RUN" --seconds "$STARGAN_S" \
    --device cpu --set batch_size=16 $RESUME >"$RUN/logs/stargan.log" 2>&1
}
lane_b() {
  "$PY" -m targets.training.evaluators --kind lfw --pack "$PACK" --out "$RUN/evaluators" \
    --seconds 120 --threads 1 --device cpu >"$RUN/logs/evaluator_lfw.log" 2>&1
  "$PY" -m targets.training.evaluators --kind utkface --pack "$PACK" --out "$RUN/evaluators" \
    --seconds 240 --threads 1 --device cpu >"$RUN/logs/evaluator_utkface.log" 2>&1
  "$PY" -m targets.training.faceswap_train --pack "$PACK" --out "$RUN" --seconds "$FACESWAP_S" \
    --device cpu $RESUME >"$RUN/logs/faceswap.log" 2>&1
  "$PY" -m targets.training.cyclegan_train --pack "$PACK" --out "$RUN" --seconds "$CYCLEGAN_S" \
    --device cpu --set batch_size=8 $RESUME >"$RUN/logs/cyclegan.log" 2>&1
  "$PY" -m targets.training.attgan_train --pack "$PACK" --out "$RUN" --seconds "$ATTGAN_S" \
    --device cpu --set batch_size=16 $RESUME >"$RUN/logs/attgan.log" 2>&1
}
lane_a &
lane_b &
wait
echo "cpu_job done: $RUN"
