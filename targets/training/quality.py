"""Measure the bundled generators' manipulation quality with the evaluators, on the test split.

No generator or evaluator has seen a test-split image. Every generator is run through
the same :class:`~targets.base.GeneratorTarget` users get (``targets.bundled``), from
the exported fp16 weights, so the figures describe what ships.

- StarGAN / AttGAN: for each test image and each attribute, the target label is built
  as the official test scripts do: StarGAN (yunjey/stargan ``create_labels``) sets the
  chosen hair colour and clears the other colours, and flips Male / Young; AttGAN
  (AttGAN-PyTorch ``test.py``) flips the attribute, resolves conflicts (one hair colour,
  Bald/Receding_Hairline vs Bangs, Mustache vs No_Beard, Straight vs Wavy hair) and
  feeds the edited attribute at intensity ``test_int = 1.0`` (the others at the
  training scale 0.5). ``success``: the fraction of edited images the CelebA evaluator
  classifies with the requested value of that attribute; ``success_changed``: the same
  over the images whose requested value differs from their own label (real edits).
  ``reconstruction_l1``: mean |G(x, c_org) - x| on the ``[0,1]`` scale.
- CycleGAN: fraction of young (15-29) test faces turned old that the UTKFace
  evaluator calls old (argmax of 3 groups; ``_binary``: old logit > young logit), and
  the reverse; ``cycle_l1``: mean |G_o2y(G_y2o(x)) - x| (and reverse), ``[0,1]`` scale.
- Face swap: fraction of Bush test faces rendered by Powell's decoder that the LFW
  evaluator calls Powell, and the reverse; ``reconstruction_l1`` with the own decoder.
- pix2pix gender swap: fraction of male test faces the CelebA evaluator reads as
  female on the output, and the reverse; the teacher StarGAN's rate beside it.

The evaluators' own test accuracy on real images is reported beside, as the ceiling.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from targets.base import GeneratorTarget
from targets.training.data import Dataset, FaceSet, load_faces, to_unit

HAIR = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
ATTGAN_TEST_INT = 1.0
ATTGAN_THRES_INT = 0.5


def _batched(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, c: Tensor,
             batch: int) -> Tensor:
    outs = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            outs.append(fn(to_unit(x[i:i + batch]), c[i:i + batch]))
    return torch.cat(outs) if outs else torch.zeros(0, 3, 64, 64)


def _logits(evaluator: nn.Module, images01: Tensor, batch: int) -> Tensor:
    outs = []
    with torch.no_grad():
        for i in range(0, images01.shape[0], batch):
            outs.append(evaluator(images01[i:i + batch]).float())
    return torch.cat(outs)


def _l1(a: Tensor, b: Tensor) -> float:
    return round(float((a - b).abs().mean()), 5)


def stargan_targets(labels01: Tensor, attrs: Sequence[str], i: int) -> Tensor:
    """yunjey/stargan ``create_labels`` for attribute ``i``: hair colour set exclusively,
    other attributes flipped. ``labels01`` ``(N, n)``; returns ``(N, n)``."""
    c = labels01.clone()
    if attrs[i] in HAIR:
        for j, a in enumerate(attrs):
            if a in HAIR:
                c[:, j] = 0.0
        c[:, i] = 1.0
    else:
        c[:, i] = 1.0 - c[:, i]
    return c


def resolve_conflicts(c: Tensor, attrs: Sequence[str], i: int) -> Tensor:
    """After setting ``attrs[i]``, clear the attributes that contradict it (rows where it is on)."""
    c = c.clone()
    name = attrs[i]
    on = c[:, i] != 0
    index = {a: j for j, a in enumerate(attrs)}

    def clear(names: Sequence[str]) -> None:
        for n in names:
            if n in index and n != name:
                c[on, index[n]] = 0.0

    if name in ("Bald", "Receding_Hairline"):
        clear(["Bangs"])
    elif name == "Bangs":
        clear(["Bald", "Receding_Hairline"])
    elif name in HAIR:
        clear(HAIR)
    elif name in ("Straight_Hair", "Wavy_Hair"):
        clear(["Straight_Hair", "Wavy_Hair"])
    elif name in ("Mustache", "No_Beard"):
        clear(["Mustache", "No_Beard"])
    return c


def attgan_targets(labels01: Tensor, attrs: Sequence[str], i: int) -> tuple[Tensor, Tensor]:
    """AttGAN-PyTorch ``test.py`` for attribute ``i``: flip, resolve conflicts.

    Returns ``(requested 0/1 labels, condition on the bundled target's 0/1 scale)``; in
    the condition the edited attribute sits at ``+-test_int`` on AttGAN's scale, i.e.
    ``1.5`` / ``-0.5`` on the 0/1 scale the target's call adapter maps to ``+-0.5``.
    """
    c = labels01.clone()
    c[:, i] = 1.0 - c[:, i]
    c = resolve_conflicts(c, attrs, i)
    cond = c.clone()
    scale = ATTGAN_TEST_INT / ATTGAN_THRES_INT
    cond[:, i] = ((c[:, i] * 2 - 1) * scale + 1) / 2
    return c, cond


def _attribute_edits(
    target: GeneratorTarget,
    evaluator: nn.Module,
    test: FaceSet,
    attrs: Sequence[str],
    make: Callable[[Tensor, int], tuple[Tensor, Tensor]],
    batch: int,
) -> dict[str, Any]:
    dev = next(evaluator.parameters()).device
    cols = [test.label_names.index(a) for a in attrs]
    org = test.labels[:, cols].float().to(dev)
    x = test.images.to(dev)
    real_logits = _logits(evaluator, to_unit(x), batch)[:, cols]
    real_pred = (real_logits > 0).float()
    per: dict[str, dict[str, Any]] = {}
    for i, a in enumerate(attrs):
        want, cond = make(org, i)
        out = _batched(target, x, cond, batch)
        pred = (_logits(evaluator, out, batch)[:, cols] > 0).float()
        ok = pred[:, i] == want[:, i]
        changed = want[:, i] != org[:, i]
        others = [j for j in range(len(attrs)) if j != i and bool((want[:, j] == org[:, j]).all())]
        kept = (pred[:, others] == real_pred[:, others]).float().mean() if others else None
        per[a] = {
            "success": round(float(ok.float().mean()), 4),
            "success_changed": round(float(ok[changed].float().mean()), 4) if changed.any() else
            float("nan"),
            "n_changed": int(changed.sum()),
            "evaluator_accuracy_real": round(float((real_pred[:, i] == org[:, i]).float().mean()),
                                             4),
            "other_attributes_kept": None if kept is None else round(float(kept), 4),
        }
    rec = _batched(target, x, org, batch)
    mean_success = sum(float(v["success"]) for v in per.values()) / len(per)
    mean_changed = [float(v["success_changed"]) for v in per.values()
                    if v["success_changed"] == v["success_changed"]]
    return {
        "n_test_images": len(test),
        "mean_success": round(mean_success, 4),
        "mean_success_changed": round(sum(mean_changed) / max(1, len(mean_changed)), 4),
        "reconstruction_l1": _l1(rec, to_unit(x)),
        "per_attribute": per,
    }


def stargan_quality(target: GeneratorTarget, evaluator: nn.Module, test: FaceSet,
                    attrs: Sequence[str], batch: int = 100) -> dict[str, Any]:
    """Official StarGAN test-label edits, judged by the CelebA evaluator."""
    def make(org: Tensor, i: int) -> tuple[Tensor, Tensor]:
        c = stargan_targets(org, attrs, i)
        return c, c

    out = _attribute_edits(target, evaluator, test, attrs, make, batch)
    out["protocol"] = ("yunjey/stargan create_labels: hair colour set exclusively, "
                       "Male/Young flipped")
    return out


def attgan_quality(target: GeneratorTarget, evaluator: nn.Module, test: FaceSet,
                   attrs: Sequence[str], batch: int = 100) -> dict[str, Any]:
    """Official AttGAN test edits (flip + conflicts, test_int 1.0), judged by the evaluator;
    also at the training intensity 0.5 (what the bundled target's one-hot conditions use)."""
    out = _attribute_edits(target, evaluator, test, attrs,
                           lambda org, i: attgan_targets(org, attrs, i), batch)

    def make_05(org: Tensor, i: int) -> tuple[Tensor, Tensor]:
        c = resolve_conflicts(_flip(org, i), attrs, i)
        return c, c

    at_05 = _attribute_edits(target, evaluator, test, attrs, make_05, batch)
    out["protocol"] = ("AttGAN-PyTorch test.py: flip attribute, resolve conflicts, edited "
                       "attribute at test_int 1.0")
    out["at_training_intensity_0.5"] = {
        "mean_success": at_05["mean_success"],
        "mean_success_changed": at_05["mean_success_changed"],
        "success_changed": {a: v["success_changed"]
                            for a, v in at_05["per_attribute"].items()},
    }
    return out


def _flip(org: Tensor, i: int) -> Tensor:
    c = org.clone()
    c[:, i] = 1.0 - c[:, i]
    return c


def cyclegan_quality(target: GeneratorTarget, evaluator: nn.Module, test: FaceSet,
                     batch: int = 100) -> dict[str, Any]:
    """Young->old and old->young success by the age evaluator, and cycle L1."""
    dev = next(evaluator.parameters()).device
    to_old = torch.tensor([1.0, 0.0], device=dev)
    to_young = torch.tensor([0.0, 1.0], device=dev)
    result: dict[str, Any] = {"n_test_images": len(test)}
    for src, cond, back, want, key in ((0, to_old, to_young, 2, "young_to_old"),
                                       (2, to_young, to_old, 0, "old_to_young")):
        x = test.images[test.labels.to(test.images.device) == src].to(dev)
        c = cond.expand(x.shape[0], -1)
        out = _batched(target, x, c, batch)
        logits = _logits(evaluator, out, batch)
        real = _logits(evaluator, to_unit(x), batch)
        other = 2 - want  # the source group's index
        with torch.no_grad():
            cyc = torch.cat([target(out[i:i + batch], back.expand(out[i:i + batch].shape[0], -1))
                             for i in range(0, out.shape[0], batch)])
        result[key] = {
            "n": int(x.shape[0]),
            "success": round(float((logits.argmax(1) == want).float().mean()), 4),
            "success_binary": round(float((logits[:, want] > logits[:, other]).float().mean()), 4),
            "evaluator_source_accuracy_real": round(
                float((real.argmax(1) == src).float().mean()), 4),
            "cycle_l1": _l1(cyc, to_unit(x)),
            "mean_abs_change": _l1(out, to_unit(x)),
        }
    parts = [result["young_to_old"], result["old_to_young"]]
    result["mean_success"] = round(sum(float(p["success"]) for p in parts) / 2, 4)
    result["protocol"] = ("test-split young (15-29) -> old and old (50+) -> young; success = "
                          "UTKFace evaluator argmax is the requested group")
    return result


def faceswap_quality(target: GeneratorTarget, evaluator: nn.Module, test: FaceSet,
                     batch: int = 100) -> dict[str, Any]:
    """Bush -> Powell and Powell -> Bush swap success by the identity evaluator."""
    dev = next(evaluator.parameters()).device
    eye = torch.eye(2, device=dev)
    result: dict[str, Any] = {"n_test_images": len(test)}
    names = test.label_names
    for src in (0, 1):
        dst = 1 - src
        x = test.images[test.labels.to(test.images.device) == src].to(dev)
        out = _batched(target, x, eye[dst].expand(x.shape[0], -1), batch)
        own = _batched(target, x, eye[src].expand(x.shape[0], -1), batch)
        logits = _logits(evaluator, out, batch)
        own_logits = _logits(evaluator, own, batch)
        result[f"{names[src]}_as_{names[dst]}"] = {
            "n": int(x.shape[0]),
            "success": round(float((logits.argmax(1) == dst).float().mean()), 4),
            "own_decoder_identity_kept": round(float((own_logits.argmax(1) == src).float().mean()),
                                               4),
            "reconstruction_l1": _l1(own, to_unit(x)),
            "mean_abs_change_swap": _l1(out, to_unit(x)),
        }
    parts = [v for k, v in result.items() if "_as_" in k]
    result["mean_success"] = round(sum(float(p["success"]) for p in parts) / 2, 4)
    result["protocol"] = ("test-split faces rendered by the other identity's decoder; success = "
                          "LFW identity evaluator says the other identity")
    return result


def gender_swap_quality(target: GeneratorTarget, evaluator: nn.Module, test: FaceSet,
                        teacher: GeneratorTarget | None = None,
                        batch: int = 100) -> dict[str, Any]:
    """An unconditional gender swap (the bundled pix2pix), judged like StarGAN's *Male* edit.

    Per direction (male -> female, female -> male by the CelebA label): ``success``, the
    fraction of outputs the CelebA evaluator reads as the other gender;
    ``other_attributes_kept``, how often its hair-colour and *Young* readings match the
    real image's. ``teacher``: the StarGAN the model was distilled from, measured the
    same way on the same faces (its ``Male`` edit) for comparison, with the mean L1
    between the two outputs on the ``[0,1]`` scale.
    """
    dev = next(evaluator.parameters()).device
    names = test.label_names
    male = names.index("Male")
    others = [names.index(a) for a in ("Black_Hair", "Blond_Hair", "Brown_Hair", "Young")]
    x = test.images.to(dev)
    org = test.labels.to(dev)
    out = _batched(lambda im, _c: target(im), x, org, batch)
    real_pred = _logits(evaluator, to_unit(x), batch) > 0
    pred = _logits(evaluator, out, batch) > 0
    teacher_pred = teacher_out = None
    if teacher is not None:
        from targets.bundled import STARGAN_ATTRS

        cols = [names.index(a) for a in STARGAN_ATTRS]
        want = stargan_targets(org[:, cols].float(), STARGAN_ATTRS, STARGAN_ATTRS.index("Male"))
        teacher_out = _batched(teacher, x, want, batch)
        teacher_pred = _logits(evaluator, teacher_out, batch) > 0
    result: dict[str, Any] = {"n_test_images": len(test)}
    rates = []
    for src, label in ((1.0, "male_to_female"), (0.0, "female_to_male")):
        rows = org[:, male] == src
        ok = pred[rows, male] == (src == 0.0)
        kept = (pred[rows][:, others] == real_pred[rows][:, others]).float().mean()
        entry: dict[str, Any] = {"n": int(rows.sum()),
                                 "success": round(float(ok.float().mean()), 4),
                                 "other_attributes_kept": round(float(kept), 4)}
        if teacher_pred is not None:
            t_ok = teacher_pred[rows, male] == (src == 0.0)
            entry["teacher_success"] = round(float(t_ok.float().mean()), 4)
        rates.append(float(entry["success"]))
        result[label] = entry
    result["mean_success"] = round(sum(rates) / 2, 4)
    result["evaluator_accuracy_real"] = round(float((real_pred[:, male] == (org[:, male] > 0.5))
                                                    .float().mean()), 4)
    result["mean_abs_change"] = _l1(out, to_unit(x))
    if teacher_out is not None:
        result["l1_to_teacher"] = _l1(out, teacher_out)
    result["protocol"] = ("CelebA test split; success = the CelebA evaluator reads the other "
                          "gender on the output, averaged over both directions")
    return result


def measure(name: str, weights_dir: Path, pack: Path, device: str | torch.device = "cpu",
            batch: int = 100) -> dict[str, Any]:
    """Quality of bundled target ``name`` from ``weights_dir`` (weights, cards, evaluators)."""
    from targets.bundled import STARGAN_ATTRS, load_bundled, load_evaluator_for
    from targets.training.export import MODELS

    target = load_bundled(name, weights_dir).to(device)
    dataset = MODELS[name]["dataset"]
    evaluator = load_evaluator_for(dataset, weights_dir, device)
    test = load_faces(pack, cast(Dataset, dataset), "test", device)
    family = name.split(".")[0]
    if family == "stargan":
        return stargan_quality(target, evaluator, test, STARGAN_ATTRS, batch)
    if family == "attgan":
        return attgan_quality(target, evaluator, test,
                              [c.name for c in target.conditions], batch)
    if family == "cyclegan":
        return cyclegan_quality(target, evaluator, test, batch)
    if family == "pix2pix":
        teacher = load_bundled(MODELS[name]["teacher"], weights_dir).to(device)
        return gender_swap_quality(target, evaluator, test, teacher, batch)
    return faceswap_quality(target, evaluator, test, batch)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m targets.training.quality")
    p.add_argument("--weights", type=Path, required=True, help="folder with weights + cards")
    p.add_argument("--pack", type=Path, required=True)
    p.add_argument("--name", action="append", default=None)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    from targets.bundled import BUNDLED_DEFAULT

    out = {n: measure(n, a.weights, a.pack, a.device) for n in (a.name or BUNDLED_DEFAULT)}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
