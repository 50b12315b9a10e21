"""``benchmarks/real_photos.py``: the photo choice and the JSON it writes (tiny target, CPU)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType

import pytest

from tests._shared import DATA, benchmark_module, require


@pytest.fixture(scope="module")
def real_photos() -> ModuleType:
    return benchmark_module("real_photos")


def test_photo_choice_is_deterministic_and_from_the_test_split(real_photos: ModuleType) -> None:
    require(DATA / "utkface" / "labels.csv", "UTKFace labels")
    require(DATA / "lfw", "LFW frames")
    from targets.training.data import split_of

    names = real_photos.utkface_test_names(DATA)
    assert names and all(split_of("utkface", n) == "test" for n in names)
    first = real_photos.choose_photos(DATA, ["lfw", "utkface"], 2)
    again = real_photos.choose_photos(DATA, ["lfw", "utkface"], 2)
    assert [p.name for p in first] == [p.name for p in again]
    lfw = [p for p in first if p.set == "lfw"]
    assert {p.name.rsplit("_", 1)[0] for p in lfw} == {"Colin_Powell", "George_W_Bush"}
    assert all(tuple(p.image.shape) == (1, 3, 250, 250) for p in lfw)


def test_social_channel_caps_the_long_side(real_photos: ModuleType) -> None:
    import torch

    big = torch.rand(1, 3, 1200, 1600, generator=torch.Generator().manual_seed(0))
    assert tuple(real_photos.social(big).shape) == (1, 3, 810, 1080)
    small = torch.rand(1, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    assert tuple(real_photos.social(small).shape) == (1, 3, 64, 48)


def test_one_tiny_set_gives_every_channel_with_sane_intervals(
    real_photos: ModuleType, tmp_path: Path,
) -> None:
    require(DATA / "celeba10k" / "images", "CelebA images")
    photos = real_photos.choose_photos(DATA, ["celeba"], 1)
    summary = real_photos.run_benchmark(photos, targets=["stargan.tiny"])
    out = tmp_path / "r.json"
    out.write_text(json.dumps(summary))
    data = json.loads(out.read_text())

    assert data["targets"] == ["stargan.tiny"]
    assert data["channels"] == list(real_photos.CHANNELS)
    [image] = data["images"]
    assert set(image["rows"]) == set(real_photos.CHANNELS)
    assert all(image["rows"][c] for c in real_photos.CHANNELS)
    for key in real_photos.REGION_KEYS:
        assert math.isfinite(data["sets"]["celeba"]["region_perceptibility"][key])
    assert sum(data["sets"]["celeba"]["face_status"].values()) == 1
    for models in (data["sets"]["celeba"]["models"], data["all"]["models"]):
        assert list(models) == ["stargan.tiny"]
        per_channel = models["stargan.tiny"]
        assert set(per_channel) == set(real_photos.CHANNELS)
        for stats in per_channel.values():
            lo, hi = stats["ci95"]
            assert stats["n"] > 0
            assert 0.0 <= lo <= stats["rate"] <= hi <= 1.0
            assert stats["rate"] == pytest.approx(stats["disrupted"] / stats["n"])
    assert "| stargan.tiny |" in real_photos.markdown(data)
