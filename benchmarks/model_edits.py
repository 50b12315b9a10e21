"""Draw what each bundled model does: its edits of held-out test faces, one picture per model.

For every bundled model, four faces of its dataset's *test* split (never trained on;
for LFW two of each identity, for UTKFace two young and two old) and the model's
output under each shown condition, drawn at twice the model's input size (nearest
neighbour, so the outputs are not smoothed). Writes ``targets/weights/<model>_edits.png``
and links it from the model's markdown card (``targets/weights/<model>.md``).

Run: python benchmarks/model_edits.py --pack PACK64 [--weights targets/weights]
     python benchmarks/model_edits.py --pack PACK96 --name stargan.celeba96
     (the packs: python -m targets.training.data pack --out PACK64 [--size 96]; use the
     pack of the model's own size, and --name to redraw only some models)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from disrupt.eval.figures import compose_grid
from targets.bundled import SPECS, WEIGHTS_DIR, load_bundled, weights_installed
from targets.training.data import FaceSet, load_faces, to_unit
from targets.training.export import MODELS

DATASET = {name: info["dataset"] for name, info in MODELS.items()}
# At most six conditions a picture; AttGAN's 13 are cut to the most telling.
SHOWN = {"attgan.celeba96": ("Bald", "Bangs", "Blond_Hair", "Eyeglasses", "Male", "Young")}
FACES = 4


def pick_faces(faces: FaceSet, dataset: str) -> torch.Tensor:
    """Four test faces: for LFW and UTKFace, two from each end of the label."""
    if dataset == "celeba":
        return faces.images[:FACES]
    low, high = (0, 1) if dataset == "lfw" else (0, 2)  # identities; young vs old
    picked = [faces.images[faces.labels == k][:FACES // 2] for k in (low, high)]
    return torch.cat(picked)


def draw(name: str, pack: Path, weights: Path) -> Path:
    target = load_bundled(name, weights if weights != WEIGHTS_DIR else None)
    dataset = DATASET[name]
    x = to_unit(pick_faces(load_faces(pack, dataset, "test"), dataset))  # type: ignore[arg-type]
    shown = SHOWN.get(name)
    conditions = [c for c in target.conditions if shown is None or c.name in shown]
    rows = []
    with torch.no_grad():
        outs = [target(x, c.vector) for c in conditions]
    for i in range(x.shape[0]):
        rows.append([x[i], *(o[i] for o in outs)])
    grid = compose_grid(rows, row_labels=[f"test face {i + 1}" for i in range(x.shape[0])],
                        col_labels=["input", *(c.name for c in conditions)],
                        cell=2 * (target.input_size or (64, 64))[0],
                        title=name)
    stem = SPECS[name].file.replace(".safetensors", "")
    out = weights / f"{stem}_edits.png"
    grid.save(out, optimize=True)
    card = weights / f"{stem}.md"
    if card.exists():
        text = card.read_text()
        line = f"![{name}: edits of held-out test faces]({out.name})"
        if line not in text:
            card.write_text(text.rstrip("\n") + f"\n\n## Edits of held-out test faces\n\n{line}\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, required=True,
                        help="face pack .npz at the models' input size")
    parser.add_argument("--weights", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--name", action="append", choices=list(SPECS), default=None,
                        help="only this bundled model (repeatable); default: every one")
    args = parser.parse_args()
    for name in args.name or SPECS:
        if weights_installed(name, args.weights):
            print(draw(name, args.pack, args.weights))


if __name__ == "__main__":
    main()
