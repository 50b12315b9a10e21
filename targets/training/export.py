"""Exporting trained models for the package: fp16 safetensors (sharded above 4 MiB),
and the model cards (JSON and markdown) with data, licence, citations, splits,
hyper-parameters, quality and sha256.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import torch

from targets.checkpoints import sha256_of
from targets.training.common import save_fp16_shards, write_json

MODELS: dict[str, dict[str, str]] = {
    "stargan.celeba96": {"run": "stargan", "dataset": "celeba", "module": "stargan_train"},
    "attgan.celeba96": {"run": "attgan", "dataset": "celeba", "module": "attgan_train"},
    "cyclegan.utkface64": {"run": "cyclegan", "dataset": "utkface", "module": "cyclegan_train"},
    "faceswap.lfw64": {"run": "faceswap", "dataset": "lfw", "module": "faceswap_train"},
    # Distilled from a trained StarGAN, so it trains after its teacher (not in run_all).
    "pix2pix.celeba96": {"run": "pix2pix", "dataset": "celeba", "module": "pix2pix_train",
                         "teacher": "stargan.celeba96"},
}
DATA_LICENCE = (
    "Non-commercial research use only. Trained on {data}, whose terms permit "
    "non-commercial research use only; these weights inherit that restriction."
)


CITATIONS = {
    "celeba": "Z. Liu, P. Luo, X. Wang, X. Tang. Deep Learning Face Attributes in the Wild. "
              "ICCV 2015 (CelebA).",
    "utkface": "Z. Zhang, Y. Song, H. Qi. Age Progression/Regression by Conditional "
               "Adversarial Autoencoder. CVPR 2017 (UTKFace).",
    "lfw": "G. B. Huang, M. Ramesh, T. Berg, E. Learned-Miller. Labeled Faces in the Wild: "
           "A Database for Studying Face Recognition in Unconstrained Environments. "
           "UMass Amherst TR 07-49, 2007 (LFW; deep-funneled images).",
}


SPLITS_DOC = {
    "celeba": "CelebA images 000001-009500 (aligned, half resolution), CenterCrop(89) then "
              "resize to 64x64. Splits by file number: generator 000001-006000, evaluator "
              "006001-009000, test 009001-009500.",
    "utkface": "UTKFace aligned/cropped faces, ages >= 15, 200x200 resized to 64x64; age groups "
               "young 15-29, middle 30-49, old 50+. Splits by a SHA-256 hash of the file name: "
               "60% generator / 25% evaluator / 15% test.",
    "lfw": "LFW deep-funneled George_W_Bush and Colin_Powell, central 116x116 box resized to "
           "64x64. Splits per identity by a SHA-256 hash of the file name: 60% generator / "
           "25% evaluator / 15% test.",
}


PAPERS = {
    "stargan.celeba96": "Y. Choi et al. StarGAN: Unified Generative Adversarial Networks for "
                        "Multi-Domain Image-to-Image Translation. CVPR 2018 "
                        "(architecture after yunjey/stargan, MIT).",
    "attgan.celeba96": "Z. He et al. AttGAN: Facial Attribute Editing by Only Changing What You "
                       "Want. IEEE TIP 2019 (architecture after elvisyjlin/AttGAN-PyTorch, MIT).",
    "cyclegan.utkface64": "J.-Y. Zhu et al. Unpaired Image-to-Image Translation using "
                          "Cycle-Consistent Adversarial Networks. ICCV 2017 (architecture after "
                          "junyanz/pytorch-CycleGAN-and-pix2pix, BSD-2-Clause).",
    "faceswap.lfw64": "The 2017 'deepfakes' shared-encoder / per-identity-decoder autoencoder, "
                      "after the 'Original' model of deepfakes/faceswap (GPL-3.0; architecture "
                      "only, reimplemented and shrunk).",
    "pix2pix.celeba96": "P. Isola et al. Image-to-Image Translation with Conditional "
                        "Adversarial Networks. CVPR 2017 (U-Net and PatchGAN after "
                        "junyanz/pytorch-CycleGAN-and-pix2pix, BSD-2-Clause); trained on "
                        "pairs made by the bundled StarGAN (knowledge distillation).",
}


def _load_fp32(path: Path) -> dict[str, torch.Tensor]:
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}


def _conditions_doc(name: str) -> list[dict[str, Any]]:
    from targets.bundled import SPECS

    return [{"name": c.name, "vector": [] if c.vector is None else c.vector.tolist()}
            for c in SPECS[name].conditions()]


def name_size(name: str) -> int | None:
    """The input side a bundled model's name states (``stargan.celeba96`` -> 96), if any."""
    match = re.search(r"(\d+)$", name)
    return int(match.group(1)) if match else None


def export_generator(name: str, out: Path, weights_dir: Path,
                     check_size: bool = True) -> dict[str, Any]:
    """``out/<run>/final.pt`` + ``train.json`` -> ``weights_dir/<file>.safetensors`` + card.

    ``check_size=False`` lets a study export a run of another size under the model's
    name into a scratch folder (never into the package)."""
    from targets.bundled import SPECS, build_network
    from targets.checkpoints import load_state_dict_strict

    spec = SPECS[name]
    info = MODELS[name]
    run = out / info["run"]
    train = json.loads((run / "train.json").read_text())
    # The trained size (StarGAN may be trained at 96 or 128; older runs lack "input").
    h, w = train.get("input", {}).get("size", [64, 64])
    named = name_size(name)
    if check_size and named is not None and (h, w) != (named, named):
        # The trainers follow the pack's size, and a name states one: a run on another
        # pack must not go out under it.
        raise ValueError(f"{run / 'train.json'}: trained at {h}x{w}, but {name} is a "
                         f"{named}x{named} model; train on a {named} px pack")
    gen = train["generator"]
    if name == "cyclegan.utkface64":
        files = train["generators"]
        arch: dict[str, Any] = {
            "class": "targets.bundled.CycleGANPair",
            "g_young2old": {"class": "targets.cyclegan.ResnetGenerator", "kwargs": gen["kwargs"]},
            "g_old2young": {"class": "targets.cyclegan.ResnetGenerator", "kwargs": gen["kwargs"]},
        }
        state = {f"g_young2old.{k}": v for k, v in _load_fp32(run / files["young_to_old"]).items()}
        state.update({f"g_old2young.{k}": v
                      for k, v in _load_fp32(run / files["old_to_young"]).items()})
    else:
        arch = {"class": f"{gen['module']}.{gen['class']}", "kwargs": gen["kwargs"]}
        state = _load_fp32(run / gen.get("file", "final.pt"))
    net = build_network(name, arch)
    load_state_dict_strict(net, state, run)  # the exported keys fit the shipped network
    files = save_fp16_shards(state, weights_dir / spec.file,
                             {"name": name, "format": "fp16 state dict"})
    dataset = info["dataset"]
    card: dict[str, Any] = {
        "name": name,
        "description": spec.description,
        "file": spec.file,
        **weights_entry(files),
        "parameters": sum(p.numel() for p in net.parameters()),
        "architecture": arch,
        "paper": PAPERS[name],
        "inference_mode": train.get("inference_mode", "eval"),
        "inference_mode_note": train.get("inference_mode_note", ""),
        "input_size": [h, w],
        "value_range": list(spec.value_range),
        "target_io": f"Target: (B,3,H,W) in [0,1], resized to {h}x{w} inside; output "
                     f"(B,3,{h},{w}) in [0,1]",
        "conditions": _conditions_doc(name),
        "data": {"dataset": dataset, "split_used": "generator", "preprocessing_and_splits":
                 SPLITS_DOC[dataset].replace("64x64", f"{h}x{w}"),
                 "details": train.get("data", {}),
                 "citation": CITATIONS[dataset]},
        "licence": DATA_LICENCE.format(data={"celeba": "CelebA", "utkface": "UTKFace",
                                             "lfw": "LFW"}[dataset]),
        "training": {
            "iterations": train.get("iterations"),
            "seconds": train.get("seconds_total", train.get("seconds")),
            "finished": train.get("finished"),
            "hardware": train.get("device", train.get("hardware")),
            "torch": train.get("torch", torch.__version__),
            "seed": train.get("seed", (train.get("config") or {}).get("seed")),
            "hyper_parameters": train.get("config", {}),
            "config_changes": train.get("config_changes", []),
            "final_losses": train.get("final_losses", train.get("losses", {}).get("l1_every_25",
                                                                                  [None])[-1:]),
        },
        "quality": None,
    }
    if "edit" in train:  # a distilled model names its teacher and the edit it learnt
        card["edit"] = train["edit"]
    write_json(card, weights_dir / spec.card_file)
    return card


def weights_entry(files: list[Path]) -> dict[str, Any]:
    """The card's ``sha256`` and ``size_bytes`` for the written files, plus ``shards``
    when there are several (see :func:`targets.bundled.shards_digest`)."""
    from targets.bundled import shards_digest

    if len(files) == 1:
        return {"sha256": sha256_of(files[0]), "size_bytes": files[0].stat().st_size}
    digests = [sha256_of(f) for f in files]
    sizes = [f.stat().st_size for f in files]
    shards = [{"file": f.name, "sha256": d, "size_bytes": n}
              for f, d, n in zip(files, digests, sizes, strict=True)]
    return {"sha256": shards_digest(digests), "size_bytes": sum(sizes), "shards": shards}


def export_evaluator(kind: str, out: Path, weights_dir: Path) -> dict[str, Any]:
    from targets.bundled import EVALUATOR_FILES

    src = out / "evaluators" / f"evaluator_{kind}.safetensors"
    train = json.loads(src.with_suffix(".json").read_text())
    dst = weights_dir / EVALUATOR_FILES[kind]
    dst.write_bytes(src.read_bytes())
    card = {
        "name": f"evaluator.{kind}",
        "file": dst.name,
        "sha256": sha256_of(dst),
        "size_bytes": dst.stat().st_size,
        "purpose": "measures whether an edit worked; trained only on the 'evaluator' split, "
                   "never on any generator's training images",
        "input": "(B,3,H,W) RGB in [0,1] (resized to 64x64 inside); output logits",
        "data": {"dataset": kind, "split_used": "evaluator (90% train, 10% model selection)",
                 "preprocessing_and_splits": SPLITS_DOC[kind], "citation": CITATIONS[kind]},
        "licence": DATA_LICENCE.format(data={"celeba": "CelebA", "utkface": "UTKFace",
                                             "lfw": "LFW"}[kind]),
        **{k: train[k] for k in ("architecture", "parameters", "label_names", "iterations",
                                 "best_iteration", "seconds", "hardware", "hyper_parameters",
                                 "test", "test_fp16_weights") if k in train},
    }
    write_json(card, dst.with_suffix(".json"))
    return card


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def markdown_card(card: dict[str, Any]) -> str:
    """A human-readable model card from the JSON card."""
    lines = [f"# {card['name']}", "", card.get("description", card.get("purpose", "")), ""]
    if "paper" in card:
        lines += [f"**Architecture source:** {card['paper']}", ""]
    lines += ["## Licence", "", card["licence"], "",
              "## Data", "", card["data"]["preprocessing_and_splits"], "",
              f"Trained on split `{card['data']['split_used']}`. Citation: "
              f"{card['data']['citation']}", ""]
    if "architecture" in card:
        lines += ["## Architecture", "", "```json", json.dumps(card["architecture"], indent=2),
                  "```", "", f"Parameters: {card.get('parameters')}; file `{card['file']}` "
                  f"({card['size_bytes'] / 2**20:.2f} MiB, fp16), sha256 `{card['sha256']}`"
                  + (", stored as " + ", ".join(f"`{s['file']}`" for s in card["shards"])
                     + " (the sha256 above is over the shards' sha256s)"
                     if "shards" in card else "") + ".", ""]
    if "edit" in card:
        e = card["edit"]
        lines += ["## Edit", "", f"`{e['name']}`, distilled from `{e['teacher']}` "
                  f"({e['teacher_label']}).", ""]
    if "inference_mode" in card:
        note = card.get("inference_mode_note", "")
        lines += [f"Inference mode: `{card['inference_mode']}`. {note}",
                  "", "Conditions: " + ", ".join(c["name"] for c in card.get("conditions", [])), ""]
    tr = card.get("training")
    if tr:
        lines += ["## Training", "", f"- iterations: {tr['iterations']}",
                  f"- seconds: {tr['seconds']}", f"- hardware: {tr['hardware']}",
                  f"- hyper-parameters: `{json.dumps(tr['hyper_parameters'])}`"]
        for change in tr.get("config_changes") or []:
            was = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in change["changed"].items())
            lines.append(f"- fine-tuned from iteration {change['iteration']} with {was}")
        lines.append("")
    elif "iterations" in card:
        lines += ["## Training", "", f"- iterations: {card['iterations']} (best at "
                  f"{card.get('best_iteration')})", f"- seconds: {card.get('seconds')}",
                  f"- hardware: {card.get('hardware')}", ""]
    q = card.get("quality")
    if q:
        lines += ["## Measured quality (test split, separately trained evaluator)", "",
                  q.get("protocol", ""), ""]
        if "per_attribute" in q:
            lines += ["| attribute | success | success (changed only) | n changed | "
                      "evaluator acc. on real | other attrs kept |", "|---|---|---|---|---|---|"]
            for a, v in q["per_attribute"].items():
                lines.append(f"| {a} | {_fmt(v['success'])} | {_fmt(v['success_changed'])} | "
                             f"{v['n_changed']} | {_fmt(v['evaluator_accuracy_real'])} | "
                             f"{_fmt(v['other_attributes_kept'])} |")
            lines += ["", f"Mean success {_fmt(q['mean_success'])}, on changed attributes "
                      f"{_fmt(q['mean_success_changed'])}; reconstruction L1 G(x, c_org) vs x "
                      f"([0,1] scale): {_fmt(q['reconstruction_l1'])}.", ""]
        else:
            for k, v in q.items():
                if isinstance(v, dict):
                    lines.append(f"- {k}: " + ", ".join(f"{kk} {_fmt(vv)}" for kk, vv in v.items()))
            lines += ["", f"Mean success: {_fmt(q.get('mean_success'))}."]
            extra = [f"{k} {_fmt(v)}" for k, v in q.items() if isinstance(v, (int, float))
                     and k not in ("mean_success", "n_test_images")]
            lines += ([f"Also: {', '.join(extra)} (n = {q.get('n_test_images')} test images)."]
                      if extra else []) + [""]
    if "test" in card:
        test = json.dumps(card["test"], indent=2)[:4000]
        lines += ["## Test-split accuracy", "", "```json", test, "```", ""]
    return "\n".join(lines) + "\n"


def install(name: str, out: Path, pack: Path, weights_dir: Path,
            device: str = "cpu") -> dict[str, Any]:
    """Export one retrained model from ``out/<run>/`` into ``weights_dir`` (the package's
    ``targets/weights`` when shipping), measure its quality there with the evaluator
    already installed beside it, and write its JSON and markdown cards. Returns the card."""
    from targets.training.quality import measure

    card = export_generator(name, out, weights_dir)
    card["quality"] = measure(name, weights_dir, pack, device)
    write_json(card, weights_dir / card["file"].replace(".safetensors", ".json"))
    (weights_dir / card["file"].replace(".safetensors", ".md")).write_text(markdown_card(card))
    return card


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m targets.training.export",
        description="Install one retrained model: export OUT/<run>/final.pt (+ train.json) "
                    "as fp16 safetensors with its cards into WEIGHTS and measure its quality "
                    "on the face pack's test split with the evaluator installed there.")
    p.add_argument("name", choices=list(MODELS))
    p.add_argument("--out", type=Path, required=True, help="the training run's output root")
    p.add_argument("--pack", type=Path, required=True, help="face pack .npz (test split)")
    p.add_argument("--weights", type=Path, required=True, help="e.g. targets/weights")
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    train = a.out / MODELS[a.name]["run"] / "train.json"
    for path, what in ((train, "training run"), (a.pack, "face pack"), (a.weights, "weights")):
        if not path.exists():
            print(f"error: {what} {path} not found", file=sys.stderr)
            return 2
    try:
        card = install(a.name, a.out, a.pack, a.weights, a.device)
    except ValueError as exc:  # a run that does not fit the name
        print(f"error: {exc}", file=sys.stderr)
        return 2
    q = card["quality"]
    print(f"{a.name}: {card['training']['iterations']} iterations, {card['size_bytes']} bytes, "
          f"mean edit success {q.get('mean_success', float('nan')):.3f} -> {a.weights}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
