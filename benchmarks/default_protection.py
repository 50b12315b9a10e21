"""What the default `disrupt protect` achieves on held-apart faces, after real-world channels.

Takes CelebA test-split faces (009401-009500 by default: never seen by any bundled
generator or evaluator), crops them as the bundled models expect (CenterCrop(89) of
the 89x109 half-size aligned images), runs ``protect()`` with its defaults (the
bundled set, strength ``mid``) on each, and measures every bundled model and
condition on the saved 8-bit image, then again after JPEG 75 / 50, a 50% resize and
Gaussian blur (sigma 1.5): the channel is applied to both the original and the
protected image, and ``G(channel(protected))`` is compared with ``G(channel(original))``.

Run: python benchmarks/default_protection.py --images ../shared/data/celeba10k/images
         [--limit 100] [--first 9401] [--strength mid] [--out runs/default_protection.json]
         [--protector bundled [--refine-steps N]]

``--give-up-after F`` and ``--conditions-per-call K`` try the focused objective's levers
(:data:`disrupt.core.pipeline.GIVE_UP_AFTER`, ``FOCUSED_CONDITIONS_PER_CALL``).

``--low-pass MODEL_PX`` sets the perceptual shaping's low-pass in pixels of a 64 px
model input (:data:`disrupt.core.pipeline.GRAIN_SIGMA_PER_SIDE` is that over 64; 0:
the high-pass alone, as before 2026-12-02).

``--only NAME`` attacks (and measures) the named models instead of the default set;
``--add-target NAME`` attacks a model beside the default set; ``--also-measure NAME``
measures one the attack never saw (transfer), e.g. the bundled ``pix2pix.celeba96``.
``--weights NAME=PATH`` swaps a model's weights for others with their card (a training
snapshot at another input size, for instance), attacked and measured in its place.

``--protector`` measures the amortized protector (``disrupt protect --fast``) instead of
the iterative attack: one forward pass, then ``--refine-steps`` attack steps (default 0).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from disrupt import protect
from disrupt.api import default_targets
from disrupt.bench.report import environment
from disrupt.core import pipeline
from disrupt.core.budget import parse_fraction, resolve_budget
from disrupt.core.crops import HELD_OUT_JITTER, CropJitter, CropTarget
from disrupt.core.faces import Box
from disrupt.eval.channels import parse_channel
from disrupt.eval.evaluation import measure_disruption
from disrupt.eval.intervals import wilson
from disrupt.eval.metrics import perceptibility
from disrupt.eval.perceptual import region_perceptibility
from disrupt.imaging import reload_saved, save_image
from disrupt.imaging.pixels import center_box, from_pil
from targets import load_target

CHANNELS = ("none", "jpeg:75", "jpeg:50", "resize:0.5", "blur:1.5")
HELD_OUT = "held-out crops"


def celeba_crop(path: Path) -> torch.Tensor:
    """The centre 89x89 square of a half-size CelebA image: ``(1, 3, 89, 89)`` in [0, 1]."""
    with Image.open(path) as im:
        w, h = im.size
        return from_pil(im.crop(center_box(w, h, min(w, h))))


def add_face_options(parser: argparse.ArgumentParser, *, first: int = 9401,
                     limit: int = 100, strength: bool = True) -> None:
    """The options every face benchmark shares: which CelebA faces, the strength
    preset (unless ``strength=False``), seed, threads, output."""
    parser.add_argument("--images", type=Path, required=True, help="CelebA image folder")
    parser.add_argument("--first", type=int, default=first, help="first image number")
    parser.add_argument("--limit", type=int, default=limit, help="how many faces")
    if strength:
        parser.add_argument("--strength", default="mid")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=None, help="JSON results")


def parse_face_options(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse, and set torch's thread count as asked."""
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_face_options(parser)
    parser.add_argument("--objective", default=None, choices=["balanced", "mean", "focused"],
                        help="what the attack maximises (default: the preset's)")
    parser.add_argument("--perceptual", default=None, action=argparse.BooleanOptionalAction,
                        help="per-pixel caps that follow the texture (default: the preset's)")
    parser.add_argument("--crop-jitter", default=None, action=argparse.BooleanOptionalAction,
                        help="attack through a distribution of crops (default: the preset's)")
    parser.add_argument("--psnr", type=float, default=None, help="PSNR floor (default: preset)")
    parser.add_argument("--eps", type=parse_fraction, default=None, metavar="CAP",
                        help="largest change per pixel, e.g. 32/255 (default: the preset's)")
    parser.add_argument("--jpeg-output", type=int, default=None, metavar="Q",
                        help="write each protected face as a JPEG at quality Q and measure "
                        "that file (every channel then starts from it)")
    parser.add_argument("--through-output", default=True, action=argparse.BooleanOptionalAction,
                        help="with --jpeg-output: let protect() optimise through that JPEG "
                        "(its default); --no-through-output attacks for a lossless file and "
                        "saves the JPEG afterwards")
    parser.add_argument("--protector", default=None,
                        help="'bundled' or a protector file: the amortized mode (--fast)")
    parser.add_argument("--refine-steps", type=int, default=None,
                        help="with --protector: attack steps after the forward pass (default 0)")
    parser.add_argument("--steps", type=int, default=None, help="attack steps (default: preset)")
    parser.add_argument("--halvings", type=int, default=0,
                        help="step-size schedule: halve the step this many times "
                        "(attacks.run_attack); with --steps")
    parser.add_argument("--give-up-after", type=float, default=None, metavar="FRACTION",
                        help="focused objective: decide what to give up after this share of "
                        "the steps (default: disrupt.core.pipeline.GIVE_UP_AFTER)")
    parser.add_argument("--conditions-per-call", type=int, default=None, metavar="K",
                        help="focused objective: score a random K of each model's conditions "
                        "per step (default: all)")
    parser.add_argument("--low-pass", type=float, default=None, metavar="MODEL_PX",
                        help="perceptual shaping's low-pass sigma in pixels of a 64 px model "
                        "input; 0: off (default: disrupt.core.pipeline.GRAIN_SIGMA_PER_SIDE)")
    parser.add_argument("--chroma", type=float, default=None, metavar="SHARE",
                        help="perceptual shaping: share of the change's colour part kept, "
                        "0-1 (default: disrupt.core.pipeline.CHROMA_SHARE)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="attack and measure these targets instead of the default set "
                        "(repeatable)")
    parser.add_argument("--add-target", action="append", default=[], metavar="NAME",
                        help="attack this target too, beside the default set (repeatable)")
    parser.add_argument("--also-measure", action="append", default=[], metavar="NAME",
                        help="measure this target without attacking it: transfer (repeatable)")
    parser.add_argument("--weights", action="append", default=[], metavar="NAME=PATH",
                        help="load NAME from PATH (a weights folder or file with its card) "
                        "instead of the package's, e.g. a training snapshot kept by "
                        "generator_robustness.py --keep-weights (repeatable)")
    args = parse_face_options(parser)
    weights: dict[str, str] = {}
    for item in args.weights:
        name, sep, path = item.partition("=")
        if not (sep and name and path):
            parser.error(f"--weights takes NAME=PATH, got {item!r}")
        weights[name] = path
    if args.give_up_after is not None:
        pipeline.GIVE_UP_AFTER = args.give_up_after
    pipeline.FOCUSED_CONDITIONS_PER_CALL = args.conditions_per_call
    if args.low_pass is not None:
        pipeline.GRAIN_SIGMA_PER_SIDE = args.low_pass / 64 if args.low_pass > 0 else None
    if args.chroma is not None:
        pipeline.CHROMA_SHARE = args.chroma
    scratch = Path(tempfile.mkdtemp(prefix="disrupt-bench-"))

    attacked_names = (args.only or default_targets()) + args.add_target
    names = attacked_names + args.also_measure
    unused = sorted(set(weights) - set(names))
    if unused:
        parser.error(f"--weights names {', '.join(unused)}, which is neither attacked nor "
                     "measured")
    attacked = [load_target(n, weights.get(n)) for n in attacked_names]
    targets = attacked + [load_target(n, weights.get(n)) for n in args.also_measure]
    channels = [parse_channel(c) for c in CHANNELS]
    channel_names = [c.name for c in channels]
    hits: dict[tuple[str, str], list[float]] = defaultdict(list)  # (channel, target) -> 0/1
    mses: dict[tuple[str, str], list[float]] = defaultdict(list)
    percept: dict[str, list[float]] = defaultdict(list)
    region: dict[str, list[float]] = defaultdict(list)
    held_out = torch.Generator().manual_seed(99)
    seconds: list[float] = []
    preset = resolve_budget(args.strength, steps=args.steps)
    # A ready attack keeps its steps and schedule; the preset's PSNR floor is then passed
    # explicitly (its cap is the attack's eps).
    attack = replace(preset.attack, halvings=args.halvings) if args.halvings else None
    psnr = args.psnr if args.psnr is not None or attack is None else preset.psnr
    for i in range(args.first, args.first + args.limit):
        x = celeba_crop(args.images / f"{i:06d}.jpg")
        start = time.perf_counter()
        options = dict(targets=attacked, strength=args.strength, seed=args.seed,
                       objective=args.objective, perceptual=args.perceptual,
                       crop_jitter=args.crop_jitter, psnr=psnr, attack=attack,
                       eps=None if attack is not None else args.eps,
                       steps=args.refine_steps if args.protector else
                       (None if attack is not None else args.steps),
                       protector=args.protector)
        saved_path = scratch / f"{i:06d}.jpg"
        if args.jpeg_output is not None and args.through_output:
            result = protect(x, **options, output=saved_path, jpeg_quality=args.jpeg_output)
        else:
            result = protect(x, **options)
        seconds.append(time.perf_counter() - start)
        protected = result.image
        if args.jpeg_output is not None:
            if not args.through_output:
                save_image(result.image, saved_path, jpeg_quality=args.jpeg_output)
            protected = reload_saved(saved_path)
            result.perceptibility = {k: float(v[0]) for k, v in
                                     perceptibility(protected, x).items()}
            result.region_perceptibility = region_perceptibility(protected, x, None,
                                                                 st_lpips_net=None)
        for key, value in result.perceptibility.items():
            percept[key].append(value)
        for key, value in result.region_perceptibility.items():
            region[key].append(float(value))
        for channel in channels:
            rows = measure_disruption(targets, channel(x), channel(protected), seed=args.seed)[0]
            for d in rows:
                hits[(channel.name, d.target)].append(float(d.disrupted))
                mses[(channel.name, d.target)].append(d.ruiz_mse)
        # Crops a manipulator's own alignment might take, drawn with a seed the attack
        # never used (scale +-10%, shift +-5%, turned up to 3 degrees), each model on each.
        whole = Box(0, 0, x.shape[-1], x.shape[-2])
        draws = [HELD_OUT_JITTER.draw_tilted(whole, (x.shape[-2], x.shape[-1]), held_out)
                 for _ in range(3)]
        views = [CropTarget(t, b, name=t.name, angle=a) for b, a in draws for t in targets]
        for d in measure_disruption(views, x, protected, seed=args.seed)[0]:
            hits[(HELD_OUT, d.target)].append(float(d.disrupted))
            mses[(HELD_OUT, d.target)].append(d.ruiz_mse)
        print(f"{i:06d}: {seconds[-1]:.1f}s, PSNR {result.perceptibility['psnr']:.1f} dB, "
              f"{result.disrupted_fraction * 100:.0f}% disrupted", flush=True)

    summary = {
        "images": f"CelebA {args.first:06d}-{args.first + args.limit - 1:06d}, CenterCrop(89)",
        "strength": args.strength, "objective": result.objective,
        "steps": result.attack.steps, "halvings": result.attack.halvings,
        "give_up_after": pipeline.GIVE_UP_AFTER,
        "conditions_per_call": pipeline.FOCUSED_CONDITIONS_PER_CALL,
        "chroma_share": pipeline.CHROMA_SHARE,
        "low_pass_model_px": (None if pipeline.GRAIN_SIGMA_PER_SIDE is None
                              else pipeline.GRAIN_SIGMA_PER_SIDE * 64),
        "perceptual": result.perceptual, "seed": args.seed,
        "protector": args.protector, "refine_steps": result.protector_steps,
        "environment": environment(args.seed, torch.device("cpu")),
        "torch": torch.__version__,
        "threads": args.threads, "targets": names, "attacked": attacked_names,
        "weights": {name: str(path) for name, path in weights.items()},
        "measured_only": args.also_measure,
        "seconds_per_image": float(np.mean(seconds)),
        "perceptibility": {k: float(np.mean(v)) for k, v in percept.items()},
        "region_perceptibility": {k: float(np.mean(v)) for k, v in region.items()},
        "crop_jitter": result.crop_jitter, "psnr_floor": result.psnr_floor,
        "max_change": args.eps if args.eps is not None else preset.attack.eps,
        "jpeg_output": args.jpeg_output,
        "jitter_rotation": CropJitter().rotation if result.crop_jitter else None,
        "held_out_jitter": vars(HELD_OUT_JITTER),
        "through_output": args.through_output if args.jpeg_output is not None else None,
        "threshold": "Ruiz MSE > 0.05 on [-1,1], per (image, condition)",
        "disrupted_fraction": {c: {n: float(np.mean(hits[(c, n)])) for n in names}
                               for c in [*channel_names, HELD_OUT]},
        "mean_ruiz_mse": {c: {n: float(np.mean(mses[(c, n)])) for n in names}
                          for c in [*channel_names, HELD_OUT]},
        "disrupted_ci95": {c: {n: wilson(hits[(c, n)]) for n in names}
                           for c in [*channel_names, HELD_OUT]},
    }
    print(f"\n{args.limit} faces, strength {args.strength}: "
          f"{summary['seconds_per_image']:.1f} s/image, "
          f"PSNR {summary['perceptibility']['psnr']:.1f} dB, "
          f"SSIM {summary['perceptibility']['ssim']:.3f}")
    print("| channel | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for c in [*channel_names, HELD_OUT]:
        cells = [f"{summary['disrupted_fraction'][c][n] * 100:.0f}% "
                 f"({summary['mean_ruiz_mse'][c][n]:.3f})" for n in names]
        print(f"| {c} | " + " | ".join(cells) + " |")
    r = summary["region_perceptibility"]
    print(f"changed region: PSNR {r['psnr']:.1f} dB, SSIM {r['ssim']:.3f}, "
          f"CIEDE2000 mean {r['ciede2000_mean']:.2f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
