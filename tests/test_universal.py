"""Universal perturbations: training beats random noise, files round-trip, protect refines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from disrupt.api import protect
from disrupt.bench.universal_train import mean_ruiz_mse, train_universal
from disrupt.core.faces import Box
from disrupt.core.universal import load_universal, place_universal, save_universal
from disrupt.errors import DisruptError
from targets import load_target

EPS = 8 / 255


def _faces(n: int, seed: int, size: int = 32) -> Tensor:
    """Smooth random images (upsampled 8x8 noise) standing in for face crops."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=g)
    return F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)


def test_training_disrupts_unseen_images_more_than_random_noise() -> None:
    targets = [load_target("stargan.tiny"), load_target("attgan.tiny")]
    train, held_out = _faces(12, 0), _faces(6, 1)
    delta = train_universal(targets, train, eps=EPS, steps=24, size=32, batch_size=4, eot=False)
    assert delta.shape == (3, 32, 32)
    assert float(delta.abs().max()) <= EPS + 1e-6
    noise = torch.randint(0, 2, (3, 32, 32), generator=torch.Generator().manual_seed(2)) * 2 - 1
    trained = mean_ruiz_mse(targets, held_out, delta)
    random = mean_ruiz_mse(targets, held_out, noise.float() * EPS)  # the strongest random noise
    assert trained > 1.5 * random, (trained, random)


def test_training_is_deterministic() -> None:
    targets = [load_target("stargan.tiny")]
    a = train_universal(targets, _faces(4, 0), eps=EPS, steps=3, batch_size=2)
    b = train_universal(targets, _faces(4, 0), eps=EPS, steps=3, batch_size=2)
    assert torch.equal(a, b)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    delta = (torch.rand(3, 16, 16) - 0.5) * 2 * EPS
    path = save_universal(tmp_path / "u.safetensors", delta, eps=EPS, targets=["stargan.tiny"])
    assert torch.equal(load_universal(path), delta)
    assert torch.equal(load_universal(delta), delta)
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(DisruptError, match="bad.safetensors"):
        load_universal(tmp_path / "bad.safetensors")
    with pytest.raises(DisruptError):
        load_universal(torch.zeros(2, 4, 4))


def test_place_universal_resizes_into_each_box() -> None:
    delta = torch.ones(3, 8, 8) * EPS
    out = place_universal(delta, [Box(2, 3, 18, 19)], (1, 3, 30, 40))
    assert torch.allclose(out[..., 3:19, 2:18], torch.full((1, 3, 16, 16), EPS))
    out[..., 3:19, 2:18] = 0
    assert (out == 0).all()


def test_protect_refines_a_universal_start(tmp_path: Path) -> None:
    delta = torch.randint(0, 2, (3, 32, 32), generator=torch.Generator().manual_seed(3)).float()
    path = save_universal(tmp_path / "u.safetensors", (delta * 2 - 1) * EPS, eps=EPS)
    x = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(4))
    r = protect(x, targets=["stargan.tiny"], universal=path, eot=False, faces=False)
    assert r.universal and r.attack.steps == 5
    assert r.attack.alpha == pytest.approx(r.attack.eps / 4)  # refining: small steps
    assert r.perceptibility["linf_255"] <= 16 + 1e-4  # mid's cap
    assert r.perceptibility["psnr"] >= 33 - 1e-3  # mid's floor
    assert r.to_dict()["universal"] is True


SHARED_CELEBA = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba10k" / "images"


def test_the_bundled_universal_is_within_the_mid_budget() -> None:
    delta = load_universal("bundled")
    assert delta.shape == (3, 64, 64)
    assert float(delta.abs().max()) <= EPS + 1e-6
    assert float(delta.abs().mean()) > EPS / 2  # a trained pattern, not a blank file


@pytest.mark.skipif(not SHARED_CELEBA.is_dir(), reason="../shared/data not present")
def test_the_bundled_universal_disrupts_stargan_on_test_faces_unlike_noise() -> None:
    from disrupt.imaging import load_image

    # 009401-009404: the CelebA test split; the universal was trained on 000001-001000.
    crops = []
    for i in range(9401, 9405):
        x = load_image(SHARED_CELEBA / f"{i:06d}.jpg").rgb  # 89x109: CenterCrop(89)
        top = (x.shape[-2] - x.shape[-1]) // 2
        crops.append(F.interpolate(x[..., top : top + x.shape[-1], :], size=(64, 64),
                                   mode="bilinear", antialias=True, align_corners=False))
    faces = torch.cat(crops).clamp(0.0, 1.0)
    stargan = [load_target("stargan.celeba96")]  # the StarGAN of the set it was trained on
    delta = load_universal("bundled")
    noise = (torch.randint(0, 2, delta.shape, generator=torch.Generator().manual_seed(0))
             * 2 - 1).float() * EPS
    assert mean_ruiz_mse(stargan, faces, delta) > 5 * mean_ruiz_mse(stargan, faces, noise)


def test_cli_universal_bundled_starts_from_the_bundled_universal(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from disrupt.cli import app

    photo = tmp_path / "face.png"
    photo.write_bytes((Path(__file__).resolve().parents[1] / "examples" / "face.png").read_bytes())
    result = CliRunner().invoke(app, ["protect", str(photo), "--universal", "bundled",
                                      "--no-eot", "--json", "--target", "stargan.celeba96", "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    row = report[0] if isinstance(report, list) else report
    assert row["universal"] is True and row["attack"]["steps"] == 5
    assert row["protector"] is False
    both = CliRunner().invoke(app, ["protect", str(photo), "--fast", "--universal", "u.st"])
    assert both.exit_code == 2 and "--fast" in both.output


def test_a_damaged_bundled_universal_fails_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import disrupt.core.universal as universal

    copy = tmp_path / "u.safetensors"
    data = bytearray(universal.BUNDLED_UNIVERSAL.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(universal, "BUNDLED_UNIVERSAL", copy)
    with pytest.raises(DisruptError, match="sha256"):
        load_universal("bundled")
