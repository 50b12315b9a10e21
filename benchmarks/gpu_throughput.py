"""Photos per second of the full attack and of the amortized protector, one batch of
many face crops on one device: the issue's GPU timing ("a batch of 64"), runnable on
the CPU with a small batch to check it first.

Photos: the first ``--limit`` images of ``--images`` (sorted; CelebA test faces in the
README's runs), each cut to its central square and resized to ``--size`` (89 keeps
half-size CelebA's CenterCrop(89) as it is), as an upload pipeline that crops faces
first would send them.
Rows, each timed after a warm-up call on the same device and ended by a device
synchronisation:

- ``full attack, batched``: :func:`disrupt.batch.protect_batch` with the defaults
  (bundled set, ``mid``), ``--batch`` photos per attack, measurement included;
- ``protector, one by one``: :func:`disrupt.protect` with ``protector="bundled"`` and
  ``measure=False`` for each photo (what ``disrupt protect --fast --no-measure`` does);
- ``protector, batched``: the bundled protector's forward pass and budget fit on all
  the crops at once (:func:`disrupt.bench.protector_train.protect_batch`, the ``mid``
  budget, each crop one whole face) and the 8-bit rounding.

The disruption of every row is measured afterwards (not timed) on its 8-bit results:
the share of outputs with Ruiz MSE > 0.05, per model.

Run: python benchmarks/gpu_throughput.py --images DIR [--limit 64] [--batch 64] [--size 89]
         [--device cuda] [--threads 2] [--out RESULTS.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from disrupt import protect
from disrupt.api import default_targets, resolve_targets
from disrupt.batch import protect_batch
from disrupt.bench.protector_train import ProtectorConfig
from disrupt.bench.protector_train import protect_batch as protector_forward
from disrupt.bench.report import environment
from disrupt.bench.universal_train import load_face_folder
from disrupt.core.protector import load_protector
from disrupt.core.seeding import move_to, resolve_device
from disrupt.eval.evaluation import disrupted_share, measure_disruption


def timed(device: torch.device, work: Callable[[], Any]) -> tuple[Any, float]:
    """``work()``'s result and its seconds, with the device synchronised at both ends."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result, time.perf_counter() - start


def rates(clean: Tensor, protected: Tensor, names: list[str]) -> dict[str, float]:
    """Per model, the share of (photo, condition) outputs disrupted."""
    targets = resolve_targets(names, None)
    move_to(targets, clean.device)
    return disrupted_share(measure_disruption(targets, clean, protected), names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=89, help="side of the central squares")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    env = environment(0, device)
    names = default_targets()
    # CelebA's half-size images give 89x89 central squares, so --size 89 keeps them as
    # they are (a same-size resize is exact).
    clean = load_face_folder(args.images, args.size, limit=args.limit)
    if clean.shape[0] < args.limit:
        raise SystemExit(f"{args.images}: {clean.shape[0]} images, --limit asks for {args.limit}")
    photos = list(clean.split(1))
    clean = clean.to(device)
    n = len(photos)
    net = load_protector("bundled").to(device)
    config = ProtectorConfig(size=net.size, width=net.width)

    # Warm-up: loads every model onto the device and runs each path once.
    protect_batch(photos[:2], batch_size=2, device=device)
    protect(photos[0], protector="bundled", measure=False, device=device)
    with torch.no_grad():
        protector_forward(net, clean[:2], config)

    full, full_s = timed(device, lambda: protect_batch(photos, batch_size=args.batch,
                                                       device=device))
    one, one_s = timed(device, lambda: [protect(p, protector="bundled", measure=False,
                                                device=device) for p in photos])

    def forward_all() -> Tensor:
        with torch.no_grad():
            return (protector_forward(net, clean, config) * 255).round() / 255

    batched, batched_s = timed(device, forward_all)

    rows: list[dict[str, Any]] = [
        {"mode": "full attack, batched", "seconds": full_s,
         "disrupted": rates(clean, torch.cat([r.image for r in full]).to(device), names)},
        {"mode": "protector, one by one", "seconds": one_s,
         "disrupted": rates(clean, torch.cat([r.image for r in one]).to(device), names)},
        {"mode": "protector, batched", "seconds": batched_s,
         "disrupted": rates(clean, batched, names)},
    ]
    side = photos[0].shape[-1]
    print(f"{n} crops of {side}x{side}, batch {args.batch}, {env['device_name']}, "
          f"threads {args.threads}")
    print("| mode | seconds | photos/s | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for r in rows:
        r["photos_per_second"] = n / r["seconds"]
        cells = " | ".join(f"{r['disrupted'][m] * 100:.0f}%" for m in names)
        print(f"| {r['mode']} | {r['seconds']:.2f} | {r['photos_per_second']:.1f} | {cells} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"command": " ".join(["python", *sys.argv]),
                                        "photos": n, "side": side, "batch": args.batch,
                                        "rows": rows, "environment": env}, indent=2))


if __name__ == "__main__":
    main()
