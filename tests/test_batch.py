"""protect_batch: photos that share an attack batch get exactly their one-by-one results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from disrupt import protect
from disrupt.batch import _groups, batchable_targets, protect_batch
from disrupt.core.pipeline import plan_protection
from disrupt.errors import SettingError
from disrupt.imaging import load_image
from targets import load_target
from targets.base import GeneratorTarget


def _photos(tmp_path: Path) -> list[Path]:
    """Three 40x48 photos and one 36x36, seeded, as PNG files."""
    rng = np.random.default_rng(3)
    paths = []
    for i, (h, w) in enumerate([(40, 48), (40, 48), (36, 36), (40, 48)]):
        path = tmp_path / f"p{i}.png"
        Image.fromarray(rng.integers(20, 236, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize(("strength", "seed"), [("low", 5), ("mid", 0), ("high", 1)])
def test_batched_photos_equal_their_one_by_one_results(tmp_path: Path, strength: str,
                                                       seed: int) -> None:
    paths = _photos(tmp_path)
    targets = [load_target("stargan.tiny")]
    steps = {"low": 3, "mid": 6, "high": 2}[strength]
    from disrupt.core.budget import resolve_budget

    budget = resolve_budget(strength, steps=steps)
    alone = [protect(p, targets=targets, budget=budget, seed=seed) for p in paths]
    outs = [tmp_path / f"out{i}.png" for i in range(len(paths))]
    together = protect_batch(paths, targets=targets, budget=budget, seed=seed, outputs=outs,
                             batch_size=8)
    assert len(together) == len(paths)
    for a, b, out in zip(alone, together, outs, strict=True):
        assert torch.equal(a.image, b.image)  # byte-identical 8-bit results
        assert not torch.equal(a.image, a.source.rgb)
        assert a.disruption == b.disruption
        assert np.array_equal(np.asarray(Image.open(out)), np.asarray(a.to_pil()))


def test_grouping_batches_same_size_whole_photo_plans_only(tmp_path: Path) -> None:
    paths = _photos(tmp_path)
    targets = [load_target("stargan.tiny")]
    sources = [load_image(p) for p in paths]
    plans = [plan_protection(s.rgb, targets) for s in sources]
    assert _groups(sources, plans, True, 8) == [[0, 1, 3], [2]]
    assert _groups(sources, plans, True, 2) == [[0, 1], [2], [3]]
    assert _groups(sources, plans, False, 8) == [[0], [1], [2], [3]]
    masked = plan_protection(sources[0].rgb, targets, mask=torch.ones(1, 1, 40, 48) * 0.5)
    assert _groups(sources[:2], [masked, plans[1]], True, 8) == [[0], [1]]


def test_batch_dependent_targets_are_never_batched(cond_target: GeneratorTarget) -> None:
    from torch import nn

    from tests.conftest import _seeded  # type: ignore[attr-defined]

    assert batchable_targets([cond_target])
    bn = GeneratorTarget("tiny.bn", _seeded(3, nn.BatchNorm2d), input_size=(32, 32),
                         conditions=cond_target.conditions, mode="train")
    assert not batchable_targets([cond_target, bn])


def test_protect_batch_rejects_bad_settings(tmp_path: Path) -> None:
    paths = _photos(tmp_path)[:2]
    with pytest.raises(SettingError, match="batch_size"):
        protect_batch(paths, targets=["stargan.tiny"], batch_size=0)
    with pytest.raises(SettingError, match="outputs"):
        protect_batch(paths, targets=["stargan.tiny"], outputs=[tmp_path / "a.png"])


def test_cli_folder_batched_equals_one_by_one(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from disrupt.cli import app

    folder = tmp_path / "in"
    folder.mkdir()
    for p in _photos(tmp_path):
        p.rename(folder / p.name)
    runs = {}
    for batch in ("8", "1"):
        out = tmp_path / f"out{batch}"
        out.mkdir()
        res = CliRunner().invoke(app, ["protect", str(folder), "-o", f"{out}/", "-t",
                                       "stargan.tiny", "--steps", "2", "--batch", batch, "-q",
                                       "--json"])
        assert res.exit_code == 0, res.output
        runs[batch] = {p.name: np.asarray(Image.open(p)) for p in sorted(out.iterdir())}
    assert len(runs["8"]) == 4 and runs["8"].keys() == runs["1"].keys()
    for name in runs["8"]:
        assert np.array_equal(runs["8"][name], runs["1"][name]), name
    res = CliRunner().invoke(app, ["protect", str(folder), "--batch", "0"])
    assert res.exit_code == 2


class _Flat(torch.nn.Module):
    """A generator that barely reacts (``y = 0.5 + 0.01 (x - 0.5)``), counting its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return 0.5 + 0.01 * (x - 0.5)


def test_focused_gives_up_on_a_target_that_cannot_move_and_batches_alike(
        tmp_path: Path) -> None:
    paths = _photos(tmp_path)[:2]  # two photos of one size: one attack batch
    flat = _Flat()
    targets = [load_target("stargan.tiny"),
               GeneratorTarget("flat", flat, value_range=(0.0, 1.0))]
    from disrupt.core.budget import resolve_budget
    from disrupt.core.pipeline import give_up_steps

    runs = {}
    for objective in ("mean", "focused"):
        flat.calls = 0
        budget = resolve_budget("mid", steps=8, objective=objective)
        runs[objective] = ([protect(p, targets=targets, budget=budget) for p in paths],
                           flat.calls)
    (mean, mean_calls), (focused, focused_calls) = runs["mean"], runs["focused"]
    # 8 steps against it under "mean"; 2 (15%, rounded up) under "focused"; the measurement
    # after the attack runs it the same number of times either way.
    assert give_up_steps(8) == 2
    assert mean_calls - focused_calls == 2 * (8 - 2)
    for a, b in zip(mean, focused, strict=True):
        # Its share of the gradient was nil: StarGAN's outputs move as under the plain mean.
        mse = {o: [d.ruiz_mse for d in r.disruption if d.target == "stargan.tiny"]
               for o, r in (("mean", a), ("focused", b))}
        assert mse["focused"] == pytest.approx(mse["mean"], rel=0.02)
    outs = [tmp_path / f"out{i}.png" for i in range(len(paths))]
    budget = resolve_budget("mid", steps=8, objective="focused")
    together = protect_batch(paths, targets=targets, budget=budget, outputs=outs, batch_size=8)
    for alone, batched in zip(focused, together, strict=True):
        assert torch.equal(alone.image, batched.image)
