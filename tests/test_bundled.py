"""The bundled models: present, documented, checksummed, really trained, and disruptable."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from disrupt import protect
from disrupt.api import default_targets
from disrupt.eval.evaluation import measure_disruption, target_outputs
from targets import CheckpointError, load_target, target_info
from targets.bundled import (
    BUNDLED_DEFAULT,
    SPECS,
    WEIGHTS_DIR,
    load_evaluator_for,
    load_fp16_state,
    weight_files,
)
from targets.checkpoints import sha256_of
from targets.training import data as data_mod
from targets.training.common import MAX_SHARD_BYTES, save_fp16_shards
from tests._shared import DATA, require

SHARED = DATA
CARD_FIELDS = ("name", "file", "sha256", "architecture", "data", "licence", "training", "quality")
MAX_BUNDLE_BYTES = 50 * 1000 * 1000  # the bundled set's budget (50 MB)
MAX_FILE_BYTES = 5 * 1000 * 1000  # no tracked file over 5 MB


def _card(name: str) -> dict:  # type: ignore[type-arg]
    info = target_info(name)
    assert info.weights is not None
    path = WEIGHTS_DIR / Path(info.weights.file).with_suffix(".json")
    return json.loads(path.read_text())


def test_every_bundled_model_is_installed_and_the_default() -> None:
    assert set(default_targets()) == set(BUNDLED_DEFAULT)
    assert len(BUNDLED_DEFAULT) == 4


def test_bundle_fits_the_size_budget() -> None:
    total = sum(p.stat().st_size for p in WEIGHTS_DIR.glob("*.safetensors"))
    assert 0 < total <= MAX_BUNDLE_BYTES


@pytest.mark.parametrize("name", tuple(SPECS))
def test_card_and_checksum(name: str) -> None:
    card = _card(name)
    for field in CARD_FIELDS:
        assert field in card, f"{name} card lacks {field}"
    assert "non-commercial" in card["licence"].lower()
    assert card["training"]["iterations"] > 0 and card["training"]["hardware"]
    cpath = WEIGHTS_DIR / Path(card["file"]).with_suffix(".json")
    for path, sha in weight_files(card, cpath, WEIGHTS_DIR / card["file"]):
        assert sha256_of(path) == sha
        assert path.stat().st_size <= MAX_FILE_BYTES  # big models are stored in shards
    assert (WEIGHTS_DIR / card["file"]).with_suffix(".md").exists()


def _copy_weights_flipping_a_byte(tmp_path: Path, name: str) -> Path:
    """A copy of the weights folder in ``tmp_path`` with the last byte of ``name`` flipped."""
    for f in WEIGHTS_DIR.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    data = bytearray((tmp_path / name).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / name).write_bytes(bytes(data))
    return tmp_path / name


def test_tampered_weights_fail_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import targets.bundled as bundled

    _copy_weights_flipping_a_byte(tmp_path, _card("faceswap.lfw64")["file"])  # one file
    monkeypatch.setattr(bundled, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="sha256"):
        bundled.load_bundled("faceswap.lfw64")


def test_a_tampered_shard_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import targets.bundled as bundled

    card = _card("attgan.celeba96")
    assert len(card["shards"]) >= 2
    shard = _copy_weights_flipping_a_byte(tmp_path, card["shards"][1]["file"])
    monkeypatch.setattr(bundled, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="sha256"):
        bundled.load_bundled("attgan.celeba96")
    shard.unlink()
    assert not bundled.weights_installed("attgan.celeba96")
    with pytest.raises(CheckpointError, match="not installed"):
        bundled.load_bundled("attgan.celeba96")


def test_shards_split_a_state_dict_and_load_back(tmp_path: Path) -> None:
    state = {f"w{i}": torch.full((100,), float(i)) for i in range(5)}  # 200 bytes each in fp16
    files = save_fp16_shards(state, tmp_path / "m.safetensors", max_bytes=450)
    assert [f.name for f in files] == [f"m-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    merged = {k: v for f in files for k, v in load_fp16_state(f, None).items()}
    assert list(merged) == list(state)
    assert all(torch.equal(merged[k], state[k]) for k in state)
    assert save_fp16_shards(state, tmp_path / "one.safetensors") == [tmp_path / "one.safetensors"]
    assert MAX_SHARD_BYTES < MAX_FILE_BYTES


def test_a_tensor_over_the_shard_size_is_stored_in_parts_and_joined(tmp_path: Path) -> None:
    import targets.bundled as bundled

    big = torch.arange(7 * 30, dtype=torch.float32).reshape(7, 30)  # 420 bytes in fp16
    state = {"small": torch.ones(3), "big": big}
    files = save_fp16_shards(state, tmp_path / "m.safetensors", max_bytes=150)
    assert all(f.stat().st_size < 150 + 400 for f in files)  # header + at most 150 bytes
    stored = {k: v for f in files for k, v in load_fp16_state(f, None).items()}
    assert sorted(stored) == ["big::part1of3", "big::part2of3", "big::part3of3", "small"]
    joined = bundled.join_parts(stored, tmp_path)
    assert list(joined) == ["small", "big"] and torch.equal(joined["big"], big)
    del stored["big::part2of3"]
    with pytest.raises(CheckpointError, match="big is stored in 3 parts"):
        bundled.join_parts(stored, tmp_path)


def _celeba_faces(n: int = 4) -> torch.Tensor:
    """CelebA test-split faces (never trained on), cropped as the models saw them."""
    folder = require(SHARED / "celeba10k" / "images", "CelebA images")
    faces = []
    for i in range(9001, 9001 + n):
        im = Image.open(folder / f"{i:06d}.jpg").convert("RGB")
        w, h = im.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        im = im.crop((left, top, left + side, top + side))
        im = im.resize((64, 64), Image.Resampling.BICUBIC)
        faces.append(torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255)
    return torch.stack(faces)


@pytest.mark.parametrize("name", BUNDLED_DEFAULT)
def test_model_edits_the_face_and_uses_its_condition(name: str) -> None:
    target = load_target(name)
    x = _celeba_faces()
    y = target_outputs(target, x)  # (K, B, 3, S, S), S the model's own size (64 or 96)
    assert y.shape[:2] == (len(target.conditions), x.shape[0])
    x_out = torch.nn.functional.interpolate(x, size=y.shape[-2:], mode="bilinear",
                                            align_corners=False)
    change = (y - x_out.unsqueeze(0)).abs().mean(dim=(2, 3, 4))  # (K, B)
    # A trained editor changes the face, but keeps it a face (not noise, not a copy).
    assert change.mean() > 0.02, f"{name} is close to an identity map"
    assert change.mean() < 0.35, f"{name} output is unrelated to its input"
    # Different conditions give different outputs: the condition is used.
    spread = (y - y.mean(dim=0, keepdim=True)).abs().mean()
    assert spread > 0.005, f"{name} ignores its condition"


def test_protection_beats_same_size_noise_on_every_bundled_model() -> None:
    # What this checks: against the four bundled models at once, a small plain L-inf budget
    # (psnr=0, 4/255) under the balanced objective moves EVERY model's outputs far more than
    # random noise of the same L-inf size does. It does not claim each model crosses the
    # Ruiz threshold: at this budget at most StarGAN does. The balanced objective, because
    # under the plain mean the 96 px StarGAN takes nearly all of the sign gradient: on this
    # face (3 steps) the mean moves StarGAN 254x the noise, AttGAN 2.0x, CycleGAN 1.7x and
    # the face swap 1.5x; the balanced objective StarGAN 108x, AttGAN 31x, CycleGAN 41x and
    # the face swap 46x.
    eps = 4 / 255
    x = _celeba_faces(1)
    chosen = [load_target(n) for n in BUNDLED_DEFAULT]
    result = protect(x, targets=chosen, strength="low", steps=3, eot=False, psnr=0, eps=eps,
                     objective="balanced")
    x_adv = result.image
    assert (x_adv - x).abs().max() <= eps + 1e-6 and torch.equal(x_adv, (x_adv * 255).round() / 255)
    # The stronger of two seeded uniform noises of the same L-inf size, per model.
    base = dict.fromkeys(BUNDLED_DEFAULT, 0.0)
    for seed in range(2):
        u = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        rows = measure_disruption(chosen, x, (x + u * eps).clamp(0, 1), seed=result.seed)[0]
        for name in BUNDLED_DEFAULT:
            mse = float(np.mean([d.ruiz_mse for d in rows if d.target == name]))
            base[name] = max(base[name], mse)
    for name in BUNDLED_DEFAULT:
        ours = float(np.mean([d.ruiz_mse for d in result.disruption if d.target == name]))
        assert ours > 2.5 * base[name], f"{name}: attack {ours:.2e} vs noise {base[name]:.2e}"
    # "Disrupted" in the report means over the Ruiz threshold.
    assert result.disrupted_fraction == pytest.approx(
        np.mean([d.ruiz_mse > result.threshold for d in result.disruption]))
    # The report is measured on the image returned: measuring it again gives the same rows.
    again = measure_disruption(chosen, x, x_adv, seed=result.seed)[0]
    assert [d.target for d in again] == [d.target for d in result.disruption]
    assert [d.condition for d in again] == [d.condition for d in result.disruption]
    np.testing.assert_allclose([d.ruiz_mse for d in again],
                               [d.ruiz_mse for d in result.disruption], rtol=1e-4, atol=1e-8)


# ----------------------------------------------------------------------------- evaluators

SAMPLE = 100  # held-apart test images per dataset (LFW: per identity, at most)
Z = 4.0  # tolerance in binomial standard errors: a fixed sample, so no flakiness either way


def _decode(jpeg: bytes) -> torch.Tensor:
    with Image.open(io.BytesIO(jpeg)) as im:
        return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).float() / 255


def _test_sample(dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, 64, 64) in [0, 1] and labels of ``SAMPLE`` test-split files of
    ``dataset`` (LFW: every test file of each identity, at most ``SAMPLE``), preprocessed
    exactly as in the face pack the cards' figures were measured on."""
    root = require(SHARED / {"celeba": "celeba10k"}.get(dataset, dataset), f"{dataset} data")
    if dataset == "celeba":
        with open(root / "attributes.csv", newline="") as fh:
            rows = list(csv.reader(fh))
        table = {r[0]: [int(v) for v in r[1:]] for r in rows[1:]}
        names = [f"{i:06d}.jpg" for i in range(9001, 9001 + SAMPLE)]
        paths = [root / "images" / n for n in names]
        labels = torch.tensor([table[n] for n in names], dtype=torch.float32)
        prep = data_mod._prep_celeba
    elif dataset == "utkface":
        with open(root / "labels.csv", newline="") as fh:
            ages = {r["filename"]: int(r["age"]) for r in csv.DictReader(fh)}
        # File names start with the age: take them in (stable) hash order, not by name.
        names = sorted((n for n, a in ages.items() if a >= data_mod.MIN_AGE
                        and data_mod.split_of("utkface", n) == "test"),
                       key=data_mod.stable_hash)[:SAMPLE]
        paths = [root / "images" / n for n in names]
        labels = torch.tensor([data_mod.age_group(ages[n]) for n in names])
        prep = data_mod._prep_utk
    else:
        paths, ids = [], []
        for label, ident in enumerate(data_mod.LFW_IDENTITIES):
            files = sorted(p for p in (root / ident).glob("*.jpg")
                           if data_mod.split_of("lfw", p.name) == "test")[:SAMPLE]
            paths += files
            ids += [label] * len(files)
        names = [p.name for p in paths]
        labels = torch.tensor(ids)
        prep = data_mod._prep_lfw
    assert all(data_mod.split_of(dataset, n) == "test" for n in names)  # never trained on
    return torch.stack([_decode(prep(p)) for p in paths]), labels


def _within_binomial(measured: float, card: float, n: int, what: str) -> None:
    tol = Z * math.sqrt(card * (1 - card) / n) + 0.5 / n
    assert abs(measured - card) <= tol, (
        f"{what}: {measured:.3f} on {n} test images vs {card:.3f} on the card (+-{tol:.3f})")


@pytest.mark.parametrize("dataset", ["celeba", "utkface", "lfw"])
def test_evaluators_match_their_cards_on_held_apart_faces(dataset: str) -> None:
    card = json.loads((WEIGHTS_DIR / f"evaluator_{dataset}.json").read_text())
    model = load_evaluator_for(dataset)
    x, labels = _test_sample(dataset)
    with torch.no_grad():
        logits = model(x)
    n = x.shape[0]
    assert logits.shape == (n, card["architecture"]["n_outputs"])
    assert n >= 40
    test = card["test"]
    if dataset == "celeba":
        per_attribute = ((logits > 0).float() == labels).float().mean(0)
        _within_binomial(float(per_attribute.mean()), test["mean_accuracy"], n, "mean accuracy")
        # Balanced attributes, where guessing the majority is far below the card's figure.
        for attr in ("Male", "Smiling"):
            k = card["label_names"].index(attr)
            _within_binomial(float(per_attribute[k]), test["accuracy"][attr], n, attr)
        return
    pred = logits.argmax(1)
    _within_binomial(float((pred == labels).float().mean()), test["accuracy"], n, "accuracy")
    # Better than always answering the most common class of the sample, by a margin.
    majority = float(torch.bincount(labels).max()) / n
    assert float((pred == labels).float().mean()) > majority + 0.1


def test_shared_targets_are_built_once_and_again_when_a_file_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    import targets.bundled as bundled
    from disrupt.api import resolve_targets

    card = _card("faceswap.lfw64")  # stored in one file
    for f in WEIGHTS_DIR.iterdir():
        shutil.copy(f, tmp_path / f.name)
    monkeypatch.setattr(bundled, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(bundled, "_SHARED", {})
    first = resolve_targets(["faceswap.lfw64"])[0]
    assert resolve_targets(["faceswap.lfw64"])[0] is first  # not rebuilt
    # Named with explicit weights, a model is built afresh every time.
    assert resolve_targets(["faceswap.lfw64"], {"faceswap.lfw64": tmp_path})[0] is not first
    # A weights file altered on disk is noticed: rebuilt, so verified again, and refused.
    _copy_weights_flipping_a_byte(tmp_path, card["file"])
    with pytest.raises(CheckpointError, match="sha256"):
        resolve_targets(["faceswap.lfw64"])
