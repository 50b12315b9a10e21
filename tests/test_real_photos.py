"""The real-photo benchmark's photo choice and social channel (:mod:`disrupt.bench.photo_sets`,
:mod:`disrupt.bench.real_photos`); the measurement itself: ``test_real_photos_bench.py``."""

from __future__ import annotations

from disrupt.bench import photo_sets, real_photos
from tests._shared import DATA, require


def test_photo_choice_is_deterministic_and_from_the_test_split() -> None:
    require(DATA / "utkface" / "labels.csv", "UTKFace labels")
    require(DATA / "lfw", "LFW frames")
    from targets.training.data import split_of

    names = photo_sets.utkface_test_names(DATA)
    assert names and all(split_of("utkface", n) == "test" for n in names)
    first = photo_sets.choose_photos(DATA, ["lfw", "utkface"], 2)
    again = photo_sets.choose_photos(DATA, ["lfw", "utkface"], 2)
    assert [p.name for p in first] == [p.name for p in again]
    lfw = [p for p in first if p.set == "lfw"]
    assert {p.name.rsplit("_", 1)[0] for p in lfw} == {"Colin_Powell", "George_W_Bush"}
    assert all(tuple(p.image.shape) == (1, 3, 250, 250) for p in lfw)


def test_social_channel_caps_the_long_side() -> None:
    import torch

    big = torch.rand(1, 3, 1200, 1600, generator=torch.Generator().manual_seed(0))
    assert tuple(real_photos.social(big).shape) == (1, 3, 810, 1080)
    small = torch.rand(1, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    assert tuple(real_photos.social(small).shape) == (1, 3, 64, 48)
