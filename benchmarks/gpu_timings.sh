#!/usr/bin/env bash
# The GPU timings of the "Protect in seconds" issue, in one run on a device machine:
# photos per second of the full attack and of the amortized protector for a batch of
# 64 face crops (benchmarks/gpu_throughput.py), then the wall time of `protect` per
# photo size and mode on the GPU (benchmarks/protect_wall_time.py --device cuda).
#
# Prepare once, here (both folders are ignored by git and travel with `carry`):
#     bash benchmarks/gpu_timings.sh --prepare    # .gpu: 64 CelebA test faces and the
#                                                 # 512 px astronaut; .whl: kornia wheels
# On the device (carry .gpu and .whl): bash benchmarks/gpu_timings.sh
# Check it on this CPU first, small: DEVICE=cpu LIMIT=4 BATCH=4 REPEATS=1 \
#     MODES="--fast --no-measure" OUT=/tmp/gpu_check bash benchmarks/gpu_timings.sh
# Results go to $OUT (gpu_throughput.json, protect_wall_time_cuda.json, log.txt).
# What travels: the tracked tree (about 54 MB), .whl (7 MB) and .gpu (1 MB), under 64 MiB.
# Device call: run(command="OUT=$OUT bash benchmarks/gpu_timings.sh", carry=[".whl", ".gpu"],
#     timeout_s=540); the full attack on 64 faces is the longest part.
set -u
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--prepare" ]; then
  mkdir -p .gpu/faces64
  for i in $(seq 9401 9464); do cp "../shared/data/celeba10k/images/00$i.jpg" .gpu/faces64/; done
  cp ../shared/data/photos/astronaut.png .gpu/astronaut.png
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl kornia==0.9.0 kornia_rs==0.2.0
  exit $?
fi
OUT="${OUT:-/tmp/disrupt_gpu_timings}"
DEVICE="${DEVICE:-cuda}"
LIMIT="${LIMIT:-64}"
BATCH="${BATCH:-64}"
REPEATS="${REPEATS:-3}"
MODES="${MODES:-default,--fast,default --no-measure,--fast --no-measure}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# The device's Python lacks kornia: install the carried wheels beside it.
if ! "$PY" -c "import kornia" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$(pwd)"
else
  export PYTHONPATH="$(pwd)"
fi
{
  echo "== $(date -u) device $DEVICE, commit $(git rev-parse --short HEAD 2>/dev/null)"
  "$PY" benchmarks/gpu_throughput.py --images .gpu/faces64 --limit "$LIMIT" \
    --batch "$BATCH" --device "$DEVICE" --out "$OUT/gpu_throughput.json" || echo "throughput failed: $?"
  "$PY" benchmarks/protect_wall_time.py --device "$DEVICE" --repeats "$REPEATS" \
    --modes="$MODES" --portrait .gpu/astronaut.png --out "$OUT/protect_wall_time_$DEVICE.json" || echo "wall time failed: $?"
} 2>&1 | tee "$OUT/log.txt"
