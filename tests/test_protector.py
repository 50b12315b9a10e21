"""The amortized protector: training lifts disruption, resumes exactly, the output keeps
the budget on the saved file, bad weights fail loudly, `--fast` runs end to end, and
the bundled protector beats same-size random noise on a held-out face."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from torch import Tensor

from disrupt.api import protect
from disrupt.bench.protector_train import (
    ProtectorConfig,
    _step_score,
    evaluate_protector,
    protect_batch,
    train_protector,
)
from disrupt.core.protector import (
    BUNDLED_PROTECTOR,
    PerturbationNet,
    fit_to_budget,
    load_protector,
    save_protector,
)
from disrupt.errors import DisruptError
from disrupt.eval.evaluation import measure_disruption
from disrupt.imaging import load_image
from targets import load_target
from tests._shared import require

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
TINY = ProtectorConfig(steps=24, batch_size=4, lr=3e-3, width=4, size=32, psnr=45.0, eot=False,
                       crop_jitter=False, every=12)


def _faces(n: int, seed: int, size: int = 32) -> Tensor:
    """Smooth random images (upsampled 8x8 noise) standing in for face crops."""
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(n, 3, 8, 8, generator=g), size=(size, size),
                         mode="bilinear", align_corners=False)


def _score(net: PerturbationNet, images: Tensor, config: ProtectorConfig) -> float:
    """Mean balanced score over every condition of stargan.tiny (no EOT, fixed crop)."""
    one_each = ProtectorConfig(**{**config.__dict__, "conditions_per_step": 100})
    with torch.no_grad():
        return float(_step_score(net, [load_target("stargan.tiny")], images, one_each,
                                 torch.Generator().manual_seed(0)).mean())


def test_training_lifts_the_score_on_held_out_faces(tmp_path: Path) -> None:
    targets = [load_target("stargan.tiny")]
    train, held_out = _faces(16, 0), _faces(6, 1)
    untrained = PerturbationNet(width=TINY.width, size=TINY.size)
    with torch.no_grad():
        noise = torch.randn(untrained.pattern.shape,
                            generator=torch.Generator().manual_seed(TINY.seed))
        untrained.pattern.copy_(0.1 * noise / noise.abs().max())
    net, state = train_protector(targets, train, held_out, TINY, folder=tmp_path)
    assert state.step == TINY.steps and len(state.log) == 2
    before, after = _score(untrained, held_out, TINY), _score(net, held_out, TINY)
    assert after > before * 1.2, (before, after)


def test_training_resumes_where_it_stopped(tmp_path: Path) -> None:
    targets = [load_target("stargan.tiny")]
    train, held_out = _faces(8, 0), _faces(2, 1)
    short = ProtectorConfig(**{**TINY.__dict__, "steps": 4, "every": 2})
    whole, _ = train_protector(targets, train, held_out, short, folder=tmp_path / "a")
    half = ProtectorConfig(**{**short.__dict__, "steps": 2})
    train_protector(targets, train, held_out, half, folder=tmp_path / "b")
    resumed, state = train_protector(targets, train, held_out, short, folder=tmp_path / "b")
    assert state.step == 4
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_training_can_start_from_a_trained_protector(tmp_path: Path) -> None:
    targets = [load_target("stargan.tiny")]
    train, held_out = _faces(8, 0), _faces(2, 1)
    first, _ = train_protector(targets, train, held_out, TINY, folder=tmp_path / "a")
    none = ProtectorConfig(**{**TINY.__dict__, "steps": 0})
    same, _ = train_protector(targets, train, held_out, none, folder=tmp_path / "b", init=first)
    for key, value in first.state_dict().items():
        assert torch.equal(value, same.state_dict()[key]), key
    wider = ProtectorConfig(**{**TINY.__dict__, "width": 8})
    with pytest.raises(ValueError, match="width 4"):
        train_protector(targets, train, held_out, wider, folder=tmp_path / "c", init=first)


def _patterned_net() -> PerturbationNet:
    """A tiny untrained net whose output is a fixed random pattern."""
    net = PerturbationNet(width=TINY.width, size=TINY.size)
    with torch.no_grad():
        net.pattern.copy_(torch.randn(net.pattern.shape,
                                      generator=torch.Generator().manual_seed(0)))
    return net


def test_validation_scores_the_jpeg_channel_too() -> None:
    targets = [load_target("stargan.tiny")]
    net = _patterned_net()
    images = _faces(4, 2)
    loud = ProtectorConfig(**{**TINY.__dict__, "psnr": 25.0, "perceptual": False,
                              "cap": 0.3, "validation_jpeg": 5})
    both = evaluate_protector(net, targets, images, loud)
    saved_only = evaluate_protector(net, targets, images,
                                    ProtectorConfig(**{**loud.__dict__, "validation_jpeg": None}))
    assert set(both) == {"stargan.tiny", "stargan.tiny@jpeg5", "mean"}
    assert set(saved_only) == {"stargan.tiny", "mean"}
    assert both["stargan.tiny"] == saved_only["stargan.tiny"] == 1.0
    assert both["mean"] == pytest.approx((both["stargan.tiny"] + both["stargan.tiny@jpeg5"]) / 2)
    assert both["stargan.tiny@jpeg5"] < 1.0  # JPEG 5 removes part of a 25 dB pattern
    # The original goes through the JPEG too: a 50 dB change disrupts nothing after it
    # (against the clean original, JPEG 30's own change would count as disruption).
    faint = ProtectorConfig(**{**loud.__dict__, "psnr": 50.0, "validation_jpeg": 30})
    assert evaluate_protector(net, targets, images, faint)["stargan.tiny@jpeg30"] == 0.0


def test_jpeg_share_decides_whether_a_step_sees_jpeg() -> None:
    targets = [load_target("stargan.tiny")]
    net = _patterned_net()
    x = _faces(2, 4)
    every = {**TINY.__dict__, "conditions_per_step": 100}  # only the EOT draw is random

    def score(**changes: object) -> Tensor:
        with torch.no_grad():
            return _step_score(net, targets, x, ProtectorConfig(**{**every, **changes}),
                               torch.Generator().manual_seed(5))

    plain = score(eot=False)
    assert torch.equal(score(eot=True, jpeg_share=0.0), plain)
    assert not torch.allclose(score(eot=True, jpeg_share=1.0), plain)


def test_fit_to_budget_fills_the_radius_under_the_caps() -> None:
    raw = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    caps = torch.full((1, 1, 24, 24), 4 / 255)
    caps[..., :12, :] = 1 / 255
    radius = 0.4
    delta = fit_to_budget(raw, radius, caps=caps, sigma=1.5)
    norms = delta.flatten(1).norm(dim=1)
    assert bool((norms <= radius + 1e-5).all())
    assert bool((norms >= 0.9 * radius).all()), norms  # the budget is used, not wasted
    assert bool((delta.abs() <= caps + 1e-7).all())


def _tiny_net(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = PerturbationNet(width=4, size=32)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape) * 0.1)
    return save_protector(tmp_path / "tiny.safetensors", net, targets=["stargan.tiny"])


def test_output_keeps_the_budget_on_the_saved_file_and_is_deterministic(
        tmp_path: Path) -> None:
    weights = _tiny_net(tmp_path)
    x = _faces(1, 3, size=48)
    runs = [protect(x, targets=["stargan.tiny"], protector=weights, psnr=33.0,
                    eps=12 / 255, seed=1, output=tmp_path / f"out{i}.png") for i in range(2)]
    assert torch.equal(runs[0].image, runs[1].image)
    saved = load_image(tmp_path / "out0.png").rgb
    delta = saved - x
    assert float(delta.abs().max()) <= 12 / 255 + 1e-6
    mse = float((saved - x).square().mean())
    assert 10 * math.log10(1 / mse) >= 33.0 - 0.05
    assert float(delta.abs().max()) > 0  # it did change the image
    assert runs[0].protector_steps == 0 and runs[0].to_dict()["protector"] is True


def test_refinement_steps_run_the_attack_from_the_forward_pass(tmp_path: Path) -> None:
    weights = _tiny_net(tmp_path)
    x = _faces(1, 3, size=48)
    forward = protect(x, targets=["stargan.tiny"], protector=weights, seed=1)
    refined = protect(x, targets=["stargan.tiny"], protector=weights, steps=3, seed=1)
    assert refined.protector_steps == 3 and refined.to_dict()["attack"]["steps"] == 3
    assert not torch.equal(forward.image, refined.image)
    assert refined.disruption[0].ruiz_mse > 0


def test_bad_weights_fail_loudly_naming_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not safetensors at all")
    with pytest.raises(DisruptError, match="garbage.safetensors: cannot read"):
        load_protector(garbage)
    net = PerturbationNet(width=4, size=32)
    wrong = tmp_path / "wrong.safetensors"
    tensors = {k: v.half() for k, v in net.state_dict().items() if k != "out.bias"}
    save_file(tensors, str(wrong), metadata={"format": "disrupt-protector-v1", "width": "4",
                                             "size": "32"})
    with pytest.raises(DisruptError, match=r"wrong.safetensors: .*missing \['out.bias'\]"):
        load_protector(wrong)
    other = tmp_path / "other.safetensors"
    save_file({"perturbation": torch.zeros(3, 4, 4)}, str(other))
    with pytest.raises(DisruptError, match="other.safetensors: not a protector"):
        load_protector(other)
    with pytest.raises(DisruptError, match="missing.safetensors"):
        protect(_faces(1, 0), targets=["stargan.tiny"], protector=tmp_path / "missing.safetensors")


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    path = _tiny_net(tmp_path)
    net = load_protector(path)
    again = load_protector(save_protector(tmp_path / "again.safetensors", net))
    x = _faces(2, 0)
    assert torch.equal(net(x), again(x))
    assert not any(p.requires_grad for p in net.parameters())


def test_cli_fast_protects_a_small_image_end_to_end(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from disrupt.cli import app

    photo = tmp_path / "face.png"
    Image.fromarray((_faces(1, 5, size=64)[0].permute(1, 2, 0).numpy() * 255).astype("uint8")
                    ).save(photo)
    runner = CliRunner()
    done = runner.invoke(app, ["protect", str(photo), "--fast", "--json", "--device", "cpu"])
    assert done.exit_code == 0, done.output
    out = tmp_path / "face.protected.png"
    assert out.exists() and load_image(out).rgb.shape == (1, 3, 64, 64)
    assert '"protector": true' in done.stdout
    clash = runner.invoke(app, ["protect", str(photo), "--fast", "--universal", "bundled",
                                "-o", str(tmp_path / "x.png")])
    assert clash.exit_code == 2
    assert "--fast" in clash.output and len(clash.output.strip().splitlines()) == 1


def _celeba_test_face(number: int) -> Tensor:
    from disrupt.imaging.pixels import center_box, from_pil

    path = require(SHARED / "data" / "celeba10k" / "images" / f"{number:06d}.jpg")
    with Image.open(path) as im:
        w, h = im.size
        return from_pil(im.crop(center_box(w, h, min(w, h))))


def test_bundled_protector_disrupts_more_than_same_size_noise_on_a_held_out_face() -> None:
    if not BUNDLED_PROTECTOR.exists():
        pytest.fail(f"{BUNDLED_PROTECTOR} is not installed")
    net = load_protector("bundled")
    stargan = load_target("stargan.celeba96")  # the StarGAN of the set it was trained on
    x = _celeba_test_face(9405)  # CelebA test split: never seen in training
    config = ProtectorConfig()
    with torch.no_grad():
        ours = (protect_batch(net, x, config) * 255).round() / 255
        noise = PerturbationNet(width=4)  # untrained: its output is its random pattern
        noise.pattern.copy_(torch.randn(noise.pattern.shape,
                                        generator=torch.Generator().manual_seed(0)))
        random = (protect_batch(noise, x, config) * 255).round() / 255
    # Same budget by construction: both fill the PSNR floor under the same caps.
    assert abs(float((ours - x).square().mean()) / float((random - x).square().mean()) - 1) < 0.1
    mse_ours = sum(d.ruiz_mse for d in measure_disruption([stargan], x, ours)[0])
    mse_random = sum(d.ruiz_mse for d in measure_disruption([stargan], x, random)[0])
    assert mse_ours > 3 * mse_random, (mse_ours, mse_random)


def test_a_damaged_bundled_protector_fails_loudly(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import disrupt.core.protector as protector

    data = bytearray(BUNDLED_PROTECTOR.read_bytes())
    data[-1] ^= 0xFF
    damaged = tmp_path / BUNDLED_PROTECTOR.name
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(protector, "BUNDLED_PROTECTOR", damaged)
    with pytest.raises(DisruptError, match="sha256 does not match the bundled protector"):
        load_protector("bundled")
