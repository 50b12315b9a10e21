"""Print the bundled models' manipulation quality, as recorded in their model cards.

The figures come from ``targets.training.quality`` (run by ``targets.training.run_all``
when the weights are exported): each edit of a held-out test image is judged by an
evaluator trained on separate images. Re-measure from scratch with
``python -m targets.training.run_all --pack .train/faces.npz --out RUN --seconds 0
--skip-training`` (after training into RUN).

Run: python benchmarks/bundled_table.py [--weights targets/weights]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

DEFAULT = Path(__file__).resolve().parents[1] / "targets" / "weights"
ROWS = ("stargan_celeba96", "attgan_celeba96", "cyclegan_utkface64", "faceswap_lfw64",
        "pix2pix_celeba96")


def _pct(value: Any) -> str:
    return f"{float(value) * 100:.0f}%" if isinstance(value, (int, float)) else "-"


def edits(card: dict[str, Any]) -> str:
    """Per-edit success rates, e.g. ``Blond_Hair 61%``."""
    q = card.get("quality", {})
    if "per_attribute" in q:
        return ", ".join(f"{a} {_pct(v.get('success'))}" for a, v in q["per_attribute"].items())
    parts = [f"{k} {_pct(v.get('success'))}" for k, v in q.items()
             if isinstance(v, dict) and "success" in v]
    return ", ".join(parts)


def kept(card: dict[str, Any]) -> str:
    """How well the rest of the face is kept: reconstruction or cycle L1 on [0, 1]."""
    q = card.get("quality", {})
    if "reconstruction_l1" in q:
        return f"reconstruction L1 {q['reconstruction_l1']:.3f}"
    cycles = [v["cycle_l1"] for v in q.values() if isinstance(v, dict) and "cycle_l1" in v]
    if cycles:
        return f"cycle L1 {sum(cycles) / len(cycles):.3f}"
    others = [v["other_attributes_kept"] for v in q.values()
              if isinstance(v, dict) and "other_attributes_kept" in v]
    if others:  # an unconditional edit has no reconstruction: hair and age readings kept
        return f"other attributes kept {sum(others) / len(others) * 100:.0f}%"
    recs = [v["reconstruction_l1"] for v in q.values()
            if isinstance(v, dict) and "reconstruction_l1" in v]
    return f"reconstruction L1 {sum(recs) / len(recs):.3f}" if recs else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=DEFAULT)
    args = parser.parse_args()
    print("| model | MB (fp16) | iterations | hardware | test images | mean success | "
          "per edit | rest of face |")
    print("|---|---|---|---|---|---|---|---|")
    for stem in ROWS:
        path = args.weights / f"{stem}.json"
        if not path.exists():
            print(f"| {stem} | not installed | | | | | | |")
            continue
        card = json.loads(path.read_text())
        t, q = card["training"], card.get("quality", {})
        print(f"| `{card['name']}` | {card['size_bytes'] / 1e6:.1f} | {t['iterations']} | "
              f"{t['hardware']}, {t['seconds'] / 60:.0f} min | {q.get('n_test_images', '-')} | "
              f"{_pct(q.get('mean_success'))} | {edits(card)} | {kept(card)} |")
    for kind in ("celeba", "utkface", "lfw"):
        path = args.weights / f"evaluator_{kind}.json"
        if path.exists():
            test = json.loads(path.read_text()).get("test", {})
            score = test.get("mean_accuracy", test.get("balanced_accuracy"))
            print(f"\nevaluator_{kind}: test {_pct(score)} "
                  f"({'mean attribute accuracy' if kind == 'celeba' else 'balanced accuracy'}"
                  f", n={test.get('n')})", end="")
    print()


if __name__ == "__main__":
    main()
