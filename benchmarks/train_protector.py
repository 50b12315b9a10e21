"""Train the amortized protector against the bundled models on CelebA training faces.

    python benchmarks/train_protector.py --images ../shared/data/celeba10k/images \
        [--limit 4000] [--validation 64] [--steps 1000] [--max-minutes 45] \
        [--folder ~/.cache/disrupt-train/protector] [--export protector.safetensors]

Faces are CelebA's first ``limit + validation`` images (all in the bundled models'
training splits, 000001-009000; the test split 009001-009500 is never read), the
central 89x89 square at native resolution, as the README's benchmarks crop them. The
last ``validation`` of them are held apart for choosing the best checkpoint. Training
state lives in ``--folder`` (never in the work tree) and resumes when run again.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from disrupt.bench.protector_train import ProtectorConfig, train_protector
from disrupt.bench.universal_train import load_face_folder
from disrupt.core.protector import load_protector, save_protector
from disrupt.core.universal import load_universal
from disrupt.errors import DisruptError

CELEBA_TEST_FIRST = 9001


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="CelebA image folder")
    parser.add_argument("--limit", type=int, default=4000, help="training faces")
    parser.add_argument("--validation", type=int, default=64, help="held-apart faces")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--objective", default="mean", choices=["mean", "balanced"])
    parser.add_argument("--margin", type=float, default=1.0, help="balanced objective's")
    parser.add_argument("--conditions-per-step", type=int, default=1)
    parser.add_argument("--every", type=int, default=50, help="validate/checkpoint every N")
    parser.add_argument("--jpeg-share", type=float, default=0.5,
                        help="probability that a step's EOT draw is a JPEG (50-95)")
    parser.add_argument("--validation-jpeg", type=int, default=75,
                        help="also validate after a real JPEG at this quality; 0: as saved only")
    parser.add_argument("--init", default=None,
                        help="fine-tune this protector ('bundled' or a .safetensors file) "
                             "instead of starting from the universal perturbation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--folder", type=Path,
                        default=Path.home() / ".cache" / "disrupt-train" / "protector")
    parser.add_argument("--export", type=Path, default=None, help="copy the best weights here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.limit + args.validation >= CELEBA_TEST_FIRST:
        raise SystemExit("--limit + --validation would reach CelebA's test split (009001-)")

    from disrupt.api import default_targets
    from targets import load_target

    names = default_targets()
    targets = [load_target(n) for n in names]
    faces = load_face_folder(args.images, 89, limit=args.limit + args.validation)
    train = (faces[: args.limit] * 255).round().to(torch.uint8)
    validation = faces[args.limit :].contiguous()
    del faces
    universal = load_universal("bundled")
    config = ProtectorConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                             width=args.width, objective=args.objective, margin=args.margin,
                             conditions_per_step=args.conditions_per_step, seed=args.seed,
                             every=args.every, jpeg_share=args.jpeg_share,
                             validation_jpeg=args.validation_jpeg or None)
    args.folder.mkdir(parents=True, exist_ok=True)
    (args.folder / "command.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "config": config.__dict__},
        indent=2))

    def show(entry: dict[str, object]) -> None:
        print(json.dumps(entry), flush=True)

    net, state = train_protector(
        targets, train, validation, config, folder=args.folder,
        start=universal / float(universal.abs().max()), names=names,
        init=None if args.init is None else load_protector(args.init),
        max_seconds=None if args.max_minutes is None else args.max_minutes * 60, progress=show)
    print(f"step {state.step}, best validation {state.best_score:.3f} at step "
          f"{state.best_step}, {state.seconds:.0f} s in all", flush=True)
    if args.export is not None:
        best = args.folder / "best.safetensors"
        if not best.exists():
            raise DisruptError(f"{best}: no checkpoint to export")
        shutil.copyfile(best, args.export) if best.exists() else save_protector(args.export, net)
        print(f"exported {args.export}")


if __name__ == "__main__":
    main()
