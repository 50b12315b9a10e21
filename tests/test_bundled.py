"""The bundled models: present, documented, checksummed, really trained, and disruptable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from disrupt import protect
from disrupt.api import default_targets
from disrupt.evaluation import measure_disruption, target_outputs
from targets import CheckpointError, load_target, target_info
from targets.bundled import (
    BUNDLED_DEFAULT,
    WEIGHTS_DIR,
    load_evaluator_for,
    load_fp16_state,
    weight_files,
)
from targets.checkpoints import sha256_of
from targets.training.common import MAX_SHARD_BYTES, save_fp16_shards

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CARD_FIELDS = ("name", "file", "sha256", "architecture", "data", "licence", "training", "quality")
MAX_BUNDLE_BYTES = 30 * 1024 * 1024
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


@pytest.mark.parametrize("name", BUNDLED_DEFAULT)
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

    _copy_weights_flipping_a_byte(tmp_path, _card("stargan.celeba64")["file"])
    monkeypatch.setattr(bundled, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="sha256"):
        bundled.load_bundled("stargan.celeba64")


def test_a_tampered_shard_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import targets.bundled as bundled

    card = _card("attgan.celeba64")
    assert len(card["shards"]) == 2
    shard = _copy_weights_flipping_a_byte(tmp_path, card["shards"][1]["file"])
    monkeypatch.setattr(bundled, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="sha256"):
        bundled.load_bundled("attgan.celeba64")
    shard.unlink()
    assert not bundled.weights_installed("attgan.celeba64")
    with pytest.raises(CheckpointError, match="not installed"):
        bundled.load_bundled("attgan.celeba64")


def test_shards_split_a_state_dict_and_load_back(tmp_path: Path) -> None:
    state = {f"w{i}": torch.full((100,), float(i)) for i in range(5)}  # 200 bytes each in fp16
    files = save_fp16_shards(state, tmp_path / "m.safetensors", max_bytes=450)
    assert [f.name for f in files] == [f"m-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    merged = {k: v for f in files for k, v in load_fp16_state(f, None).items()}
    assert list(merged) == list(state)
    assert all(torch.equal(merged[k], state[k]) for k in state)
    assert save_fp16_shards(state, tmp_path / "one.safetensors") == [tmp_path / "one.safetensors"]
    assert MAX_SHARD_BYTES < MAX_FILE_BYTES


def _celeba_faces(n: int = 4) -> torch.Tensor:
    """CelebA test-split faces (never trained on), cropped as the models saw them."""
    folder = SHARED / "celeba10k" / "images"
    if not folder.exists():
        pytest.skip("../shared/data is not available")
    faces = []
    for i in range(9001, 9001 + n):
        im = Image.open(folder / f"{i:06d}.jpg").convert("RGB")
        w, h = im.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((64, 64), Image.BICUBIC)
        faces.append(torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255)
    return torch.stack(faces)


@pytest.mark.parametrize("name", BUNDLED_DEFAULT)
def test_model_edits_the_face_and_uses_its_condition(name: str) -> None:
    target = load_target(name)
    x = _celeba_faces()
    y = target_outputs(target, x)  # (K, B, 3, 64, 64)
    assert y.shape[:2] == (len(target.conditions), x.shape[0])
    change = (y - x.unsqueeze(0)).abs().mean(dim=(2, 3, 4))  # (K, B)
    # A trained editor changes the face, but keeps it a face (not noise, not a copy).
    assert change.mean() > 0.02, f"{name} is close to an identity map"
    assert change.mean() < 0.35, f"{name} output is unrelated to its input"
    # Different conditions give different outputs: the condition is used.
    spread = (y - y.mean(dim=0, keepdim=True)).abs().mean()
    assert spread > 0.005, f"{name} ignores its condition"


def test_protection_disrupts_every_bundled_model() -> None:
    # Plain L-inf (psnr=0) spreads the change over every pixel, so every model gets its
    # share; under the default PSNR floor the ensemble favours the most sensitive
    # model (StarGAN), see the README.
    x = _celeba_faces(2)
    chosen = [load_target(n) for n in BUNDLED_DEFAULT]
    result = protect(x[:1], targets=chosen, strength="low", steps=10, eot=False, psnr=0,
                     eps=4 / 255)
    x_adv = result.image
    noise = (x[:1] + (torch.rand(x[:1].shape, generator=torch.Generator().manual_seed(0))
                      * 2 - 1) * 4 / 255).clamp(0, 1)
    noise_rows = measure_disruption(chosen, x[:1], noise)[0]
    for name in BUNDLED_DEFAULT:
        ours = np.mean([d.ruiz_mse for d in result.disruption if d.target.startswith(name)])
        base = np.mean([d.ruiz_mse for d in noise_rows if d.target == name])
        assert ours > 3 * base, f"{name}: attack {ours:.4f} vs random noise {base:.4f}"
    assert result.disrupted_fraction > 0
    assert measure_disruption(chosen, x[:1], x_adv)[0]


@pytest.mark.parametrize("dataset", ["celeba", "utkface", "lfw"])
def test_evaluators_load_and_classify(dataset: str) -> None:
    model = load_evaluator_for(dataset)
    logits = model(torch.rand(2, 3, 64, 64))
    assert logits.shape[0] == 2 and torch.isfinite(logits).all()
