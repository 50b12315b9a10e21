"""The bundled pix2pix U-Net: its distillation trainer, export, loading and quality measure.

The trainer runs on a pack of a few CelebA images at 96 px (the shipped model's size) with
the package's StarGAN as the teacher and a 4-channel U-Net, so these tests take seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from disrupt.api import default_targets
from targets import list_targets, load_target
from targets.base import GeneratorTarget
from targets.bundled import BUNDLED_DEFAULT, SPECS, load_bundled, load_evaluator_for
from targets.training.data import load_faces, pack_faces, to_unit
from targets.training.pix2pix_train import EDIT, make_pairs, num_downs_for, train_pix2pix
from targets.training.quality import gender_swap_quality
from tests._shared import DATA

NAME = "pix2pix.celeba96"


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not DATA.exists():
        pytest.skip("../shared/data not available")
    out = tmp_path_factory.mktemp("pack") / "faces.npz"
    pack_faces(DATA, out, limit=8, workers=1, size=96)
    return out


def test_pairs_keep_only_edits_the_evaluator_accepts(pack: Path) -> None:
    pairs = make_pairs(pack, None, torch.device("cpu"), batch=3)
    faces = load_faces(pack, "celeba", "generator")
    assert pairs["made"] == len(faces) and 0 < pairs["kept"] <= pairs["made"]
    assert pairs["x"].shape == pairs["y"].shape == (pairs["kept"], 3, 96, 96)
    assert pairs["x"].dtype == pairs["y"].dtype == torch.uint8
    # Each kept target is the teacher's edit, and the evaluator reads the flipped gender.
    evaluator = load_evaluator_for("celeba")
    male = faces.label_names.index(EDIT)
    rows = [faces.names.index(n) for n in pairs["names"]]
    with torch.no_grad():
        read = evaluator(to_unit(pairs["y"]))[:, male] > 0
    assert torch.equal(read, faces.labels[rows, male] < 0.5)
    assert torch.equal(pairs["x"], faces.images[rows])


def test_unet_depth_follows_the_size() -> None:
    assert [num_downs_for(s) for s in (64, 96, 128, 256, 512)] == [6, 5, 7, 8, 8]
    with pytest.raises(ValueError, match="halves only"):
        num_downs_for(48)


def test_training_resumes_exactly(pack: Path, tmp_path: Path) -> None:
    kw: dict[str, Any] = {"seconds": 600, "iters": 4, "device": "cpu", "batch_size": 2,
                          "ngf": 4, "ndf": 4, "log": False}
    straight = train_pix2pix(pack, tmp_path / "a", **kw)
    assert straight["iterations"] == 4 and straight["finished"]
    # A run interrupted after 2 iterations, continued with --resume, ends in the same weights.
    train_pix2pix(pack, tmp_path / "b", **kw, stop_at=2)
    ck = torch.load(tmp_path / "b" / "pix2pix" / "ckpt.pt", weights_only=True)
    assert int(ck["iter"]) == 2
    resumed = train_pix2pix(pack, tmp_path / "b", **kw, resume=True)
    assert resumed["resumed_from_iteration"] == 2 and resumed["iterations"] == 4
    a = torch.load(tmp_path / "a" / "pix2pix" / "final.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "pix2pix" / "final.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # and training moved on after the interruption.
    assert any(not torch.equal(b[k], ck["g"][k]) for k in b)


def test_exported_model_loads_as_an_unconditional_batch_independent_target(
        pack: Path, tmp_path: Path) -> None:
    from targets.training.export import export_generator

    train_pix2pix(pack, tmp_path, seconds=600, iters=2, device="cpu", batch_size=2, ngf=4,
                  ndf=4, log=False)
    card = export_generator(NAME, tmp_path, tmp_path / "weights")
    assert card["edit"]["teacher"] == "stargan.celeba96"
    assert card["inference_mode"] == "eval" and card["input_size"] == [96, 96]
    assert card["architecture"]["kwargs"]["num_downs"] == 5  # a 3x3 bottleneck at 96 px
    target = load_bundled(NAME, tmp_path / "weights")
    assert [c.name for c in target.conditions] == ["gender_swap"]
    assert target.conditions[0].vector is None
    x = torch.rand(3, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = target(x)
        alone = target(x[1:2])
    assert y.shape == (3, 3, 96, 96) and float(y.min()) >= 0 and float(y.max()) <= 1
    torch.testing.assert_close(y[1:2], alone)  # InstanceNorm, no dropout: no batch mixing
    saved = torch.load(tmp_path / "pix2pix" / "final.pt", weights_only=True)
    from targets.pix2pix import UnetGenerator

    net = UnetGenerator(**card["architecture"]["kwargs"]).eval()
    net.load_state_dict(saved)
    with torch.no_grad():
        direct = (net(x * 2 - 1) + 1) / 2
    torch.testing.assert_close(y, direct, atol=2e-3, rtol=0)  # fp16 weights


def test_gender_swap_quality_of_the_teacher_equals_its_own_rate(pack: Path) -> None:
    # Judged as a gender swap, the teacher (wrapped to flip Male) must score exactly what
    # the measure reports as the teacher's rate: both sides read the same outputs.
    from targets.bundled import STARGAN_ATTRS
    from targets.training.quality import stargan_targets

    teacher = load_bundled("stargan.celeba96")
    evaluator = load_evaluator_for("celeba")
    test = load_faces(pack, "celeba", "test")
    cols = [test.label_names.index(a) for a in STARGAN_ATTRS]

    want = stargan_targets(test.labels[:, cols], STARGAN_ATTRS, STARGAN_ATTRS.index("Male"))

    def swap(x01: torch.Tensor) -> torch.Tensor:  # the whole split arrives as one batch
        return teacher(x01, want)

    q = gender_swap_quality(swap, evaluator, test, teacher, batch=len(test))  # type: ignore[arg-type]
    for side in ("male_to_female", "female_to_male"):
        if q[side]["n"]:
            assert q[side]["success"] == q[side]["teacher_success"]
    assert q["l1_to_teacher"] == 0.0
    assert 0.0 <= q["mean_success"] <= 1.0 and q["n_test_images"] == len(test)


def test_bundled_pix2pix_is_listed_but_not_in_the_default_protection() -> None:
    assert NAME in SPECS and NAME not in BUNDLED_DEFAULT
    assert NAME not in default_targets()
    info = {i.name: i for i in list_targets()}[NAME]
    assert info.bundled and not info.needs_weights


def test_shipped_pix2pix_is_a_real_gender_swap() -> None:
    card = json.loads((Path(__file__).resolve().parents[1] / "targets" / "weights"
                       / "pix2pix_celeba96.json").read_text())
    q = card["quality"]
    # Measured on the test split when exported; the shipped model must edit, not copy.
    assert q["mean_success"] >= 0.5 and q["mean_abs_change"] > 0.02
    target = load_target(NAME)
    assert isinstance(target, GeneratorTarget) and target.mode == "eval"


def test_export_refuses_a_run_trained_at_another_size(pack: Path, tmp_path: Path) -> None:
    # The name states the size (pix2pix.celeba96): a run on a 64 px pack must not ship
    # under it.
    from targets.training.export import export_generator

    train_pix2pix(pack, tmp_path, seconds=600, iters=1, device="cpu", batch_size=2, ngf=4,
                  ndf=4, log=False)
    record = tmp_path / "pix2pix" / "train.json"
    info = json.loads(record.read_text())
    info["input"]["size"] = [64, 64]
    record.write_text(json.dumps(info))
    with pytest.raises(ValueError, match="trained at 64x64, but pix2pix.celeba96 is a 96x96"):
        export_generator(NAME, tmp_path, tmp_path / "weights")
    assert not (tmp_path / "weights").exists() or not any((tmp_path / "weights").iterdir())
    # A study (generator_robustness.py --snapshot) exports into scratch without the check.
    card = export_generator(NAME, tmp_path, tmp_path / "scratch", check_size=False)
    assert card["name"] == NAME and (tmp_path / "scratch" / "pix2pix_celeba96.json").exists()


def test_cli_refuses_to_export_from_a_pack_of_another_size(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from targets.training.pix2pix_train import main

    if not DATA.exists():
        pytest.skip("../shared/data not available")
    pack64 = tmp_path_factory.mktemp("pack64") / "faces64.npz"
    pack_faces(DATA, pack64, limit=2, workers=1, size=64)
    code = main(["--pack", str(pack64), "--out", str(tmp_path / "run"), "--smoke",
                 "--export", str(tmp_path / "weights")])
    assert code == 2
    assert "is 64 px; pix2pix.celeba96 exports only a 96 px run" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before any training
