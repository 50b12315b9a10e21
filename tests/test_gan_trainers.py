"""The GAN trainers (StarGAN, AttGAN, CycleGAN): steps, checkpoints, resume, export.

CPU only and fast: tiny widths (each config's ``smoke()``), batches of 4, synthetic
64x64 face sets (StarGAN also at 96 and 128); the command-line tests build packs of a
few real images from ``../shared/data`` (skipped when absent).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from targets.attgan import CELEBA_ATTRS, AttGANGenerator
from targets.cyclegan import ResnetGenerator
from targets.stargan import StarGANGenerator
from targets.training import attgan_train, cyclegan_train, stargan_train
from targets.training.cli import apply_overrides, parse_cli
from targets.training.data import FaceSet, load_faces, pack_faces
from targets.training.gan_common import (
    GanTrainer,
    IndexSampler,
    gradient_penalty,
    sample_target_labels,
)
from targets.training.loop import RunOptions, lr_factor, train

CPU = torch.device("cpu")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# 40 label names holding every attribute the trainers use (the real CelebA order is not needed).
CELEBA_NAMES = list(dict.fromkeys([*stargan_train.STARGAN_ATTRS, *CELEBA_ATTRS]))
CELEBA_NAMES += [f"Other_{i}" for i in range(40 - len(CELEBA_NAMES))]
GENERATOR_CLASSES: dict[str, type[nn.Module]] = {
    "stargan": StarGANGenerator, "attgan": AttGANGenerator, "cyclegan": ResnetGenerator,
}


def celeba_like(n: int = 10, seed: int = 0, size: int = 64) -> FaceSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    labels = (torch.rand(n, 40, generator=g) < 0.4).float()
    return FaceSet(images, labels, CELEBA_NAMES, [f"{i:06d}.jpg" for i in range(n)])


def utkface_like(n: int = 12, seed: int = 0) -> FaceSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % 3
    return FaceSet(images, labels, ["young", "middle", "old"], [f"u{i}.jpg" for i in range(n)])


def make_trainer(model: str, seed: int = 0) -> GanTrainer:
    if model == "stargan":
        return stargan_train.StarGANTrainer(stargan_train.StarGANConfig.smoke(), celeba_like(),
                                            CPU, seed)
    if model == "attgan":
        return attgan_train.AttGANTrainer(attgan_train.AttGANConfig.smoke(), celeba_like(),
                                          CPU, seed)
    return cyclegan_train.CycleGANTrainer(cyclegan_train.CycleGANConfig.smoke(), utkface_like(),
                                          CPU, seed)


MODELS = ("stargan", "attgan", "cyclegan")


def _params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(before: list[torch.Tensor], module: nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


# ----------------------------------------------------------------------------- steps


@pytest.mark.parametrize("model", MODELS)
def test_steps_give_finite_losses_and_update_both_players(model: str) -> None:
    trainer = make_trainer(model)
    before = {k: _params(m) for k, m in trainer.nets.items()}
    seen: dict[str, float] = {}
    for _ in range(2):  # the smoke configs update G on every 2nd iteration (or every one)
        for k, v in trainer.step().items():
            assert v.ndim == 0 and not v.requires_grad
            seen[k] = float(v)
    assert all(torch.isfinite(torch.tensor(v)) for v in seen.values()), seen
    assert any(k.startswith("D/") for k in seen) and any(k.startswith("G/") for k in seen)
    for k, m in trainer.nets.items():
        assert _changed(before[k], m), f"{k} did not change"
    assert trainer.iteration == 2 and trainer.g_updates >= 1 and trainer.d_updates == 2
    # Nothing is left requiring gradients on the data.
    assert all(p.grad is None or torch.isfinite(p.grad).all() for m in trainer.nets.values()
               for p in m.parameters())


def test_discriminator_shapes() -> None:
    x = torch.zeros(2, 3, 64, 64)
    src, cls = stargan_train.StarGANDiscriminator(64, 8, 5, 5)(x)
    assert src.shape == (2, 1, 2, 2) and cls.shape == (2, 5)
    adv, att = attgan_train.AttGANDiscriminator(4, 8, 4, 64, 13)(x)
    assert adv.shape == (2, 1) and att.shape == (2, 13)
    assert cyclegan_train.NLayerDiscriminator(3, 4, 3)(x).shape == (2, 1, 6, 6)


def test_stargan_discriminator_depth_follows_the_image_size() -> None:
    # 64 -> 5 layers (2x2 map), 96 -> 5 (3x3: 6 would give 1.5), 128 -> 6 (the official 2x2).
    assert [stargan_train.d_repeat_for(s) for s in (64, 96, 128)] == [5, 5, 6]
    for size, k in ((96, 3), (128, 2)):
        cfg = stargan_train.StarGANConfig().at_size(size)
        d = stargan_train.StarGANDiscriminator(size, 8, 5, cfg.d_repeat_num)
        src, cls = d(torch.zeros(2, 3, size, size))
        assert src.shape == (2, 1, k, k) and cls.shape == (2, 5)
    assert stargan_train.StarGANConfig().at_size(64) == stargan_train.StarGANConfig()


@pytest.mark.parametrize("size", [96, 128])
def test_stargan_steps_at_larger_sizes(size: int) -> None:
    cfg = stargan_train.StarGANConfig.smoke().at_size(size)
    trainer = stargan_train.StarGANTrainer(cfg, celeba_like(size=size), CPU)
    losses = {k: float(v) for _ in range(2) for k, v in trainer.step().items()}
    assert "G/rec" in losses and all(torch.isfinite(torch.tensor(list(losses.values()))))
    with pytest.raises(ValueError, match="image_size"):  # faces and config must agree
        stargan_train.StarGANTrainer(stargan_train.StarGANConfig.smoke(),
                                     celeba_like(size=size), CPU)


def test_gradient_penalty_of_a_linear_critic_is_exact() -> None:
    # critic(x) = <w, x> per image: the gradient is w everywhere, the penalty (|w| - 1)^2.
    w = torch.randn(3, 8, 8)
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    gp = gradient_penalty(lambda t: (t * w).flatten(1).sum(1), real, fake, torch.Generator())
    torch.testing.assert_close(gp, (w.norm() - 1) ** 2, rtol=1e-5, atol=1e-6)


def test_target_labels_permute_and_balance_hair_colours() -> None:
    attrs = CELEBA_ATTRS
    labels = (torch.rand(256, len(attrs), generator=torch.Generator().manual_seed(1)) < 0.5)
    labels = labels.float()
    permuted = sample_target_labels(labels, attrs, "permute", torch.Generator().manual_seed(0))
    assert sorted(map(tuple, permuted.tolist())) == sorted(map(tuple, labels.tolist()))
    bal = sample_target_labels(labels, attrs, "balanced", torch.Generator().manual_seed(0))
    hair = [attrs.index(a) for a in ("Black_Hair", "Blond_Hair", "Brown_Hair")]
    one_hot = bal[:, hair].sum(1) == 1
    assert 0.3 < one_hot.float().mean() < 0.95  # about half set, plus lucky permuted rows
    # Rows whose colour was set have Bald cleared; each colour is asked for.
    assert bal[:, hair].sum(0).min() > 20
    with pytest.raises(ValueError):
        sample_target_labels(labels, attrs, "nope", torch.Generator())


def test_index_sampler_covers_an_epoch_and_resumes() -> None:
    pool = torch.arange(10, 20)
    s = IndexSampler(pool, 5, torch.Generator().manual_seed(0))
    epoch = torch.cat([s.next(), s.next()])
    assert sorted(epoch.tolist()) == list(range(10, 20))
    state = s.state_dict()
    gen_state = s.generator.get_state()
    a = [s.next().tolist() for _ in range(3)]
    s.load_state_dict(state)
    s.generator.set_state(gen_state)
    assert [s.next().tolist() for _ in range(3)] == a
    small = IndexSampler(torch.arange(3), 8, torch.Generator())
    assert small.next().shape == (8,)


def test_image_pool_fills_then_swaps() -> None:
    pool = cyclegan_train.ImagePool(4, torch.Generator().manual_seed(0))
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # while filling, images pass through
    second = torch.arange(10.0, 16.0).view(6, 1, 1, 1)
    out = pool.query(second)
    assert torch.equal(out[:1], second[:1]) and pool.count == 4
    assert pool.images is not None
    stored = set(pool.images.flatten().tolist())
    # Every returned image is either its own input or an image seen before.
    seen = set(first.flatten().tolist()) | set(second.flatten().tolist())
    assert set(out.flatten().tolist()) <= seen and stored <= seen


def test_overrides_parse_by_field_type() -> None:
    cfg = apply_overrides(stargan_train.StarGANConfig(),
                          {"n_critic": "3", "g_lr": "1e-4", "amp": "false",
                           "attrs": "Male,Young", "target_sampling": "permute"})
    assert (cfg.n_critic, cfg.g_lr, cfg.amp, cfg.attrs) == (3, 1e-4, False, ("Male", "Young"))
    with pytest.raises(SystemExit):
        apply_overrides(cfg, {"no_such_key": "1"})
    with pytest.raises(SystemExit):
        apply_overrides(cfg, {"n_critic": "many"})


# ----------------------------------------------------------------------------- the loop


def _load_final(run_dir: Path, card: dict[str, Any], file: str = "final.pt") -> nn.Module:
    cls = GENERATOR_CLASSES[card["model"]]
    net = cls(**card["generator"]["kwargs"])
    state = torch.load(run_dir / file, map_location="cpu", weights_only=True)
    assert all(v.dtype != torch.float16 for v in state.values())
    net.load_state_dict(state, strict=True)
    return net


@pytest.mark.parametrize("model", MODELS)
def test_train_writes_files_and_resume_adds_up(model: str, tmp_path: Path) -> None:
    card = train(make_trainer(model), RunOptions(out=tmp_path, seconds=600, iters=3))
    run_dir = tmp_path / model
    assert {"ckpt.pt", "final.pt", "train.json"} <= {p.name for p in run_dir.iterdir()}
    assert card["iterations"] == 3 and card["finished"]
    assert json.loads((run_dir / "train.json").read_text())["iterations"] == 3
    assert card["inference_mode"] in ("train", "eval")
    assert set(card["final_losses"]) and card["device"].startswith("cpu")
    net = _load_final(run_dir, card)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        if model == "cyclegan":
            _load_final(run_dir, card, "final_old_to_young.pt")
            y = net(x)
        else:
            c_dim = len(stargan_train.STARGAN_ATTRS if model == "stargan" else CELEBA_ATTRS)
            c = torch.zeros(1, c_dim)
            y = net.train(card["inference_mode"] == "train")(x, c)
    assert y.shape == x.shape and torch.isfinite(y).all()

    # Resume: 3 more iterations on top of the 3 saved, same hyper-parameters.
    card2 = train(make_trainer(model), RunOptions(out=tmp_path, seconds=600, iters=6,
                                                  resume=True))
    assert card2["iterations"] == 6
    assert card2["iterations_this_run"] == 3 and card2["resumed_from_iteration"] == 3
    assert card2["d_updates"] == 6
    assert len(card2["history"]) >= 2


@pytest.mark.parametrize("model", MODELS)
def test_resume_reproduces_an_uninterrupted_run(model: str, tmp_path: Path) -> None:
    straight = make_trainer(model)
    train(straight, RunOptions(out=tmp_path / "a", seconds=600, iters=4))
    train(make_trainer(model), RunOptions(out=tmp_path / "b", seconds=600, iters=2))
    resumed = make_trainer(model)
    train(resumed, RunOptions(out=tmp_path / "b", seconds=600, iters=4, resume=True))
    for k in straight.nets:
        for (name, a), b in zip(straight.nets[k].state_dict().items(),
                                resumed.nets[k].state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, msg=f"{k}.{name}")


def test_resume_refuses_other_hyper_parameters(tmp_path: Path) -> None:
    train(make_trainer("stargan"), RunOptions(out=tmp_path, seconds=600, iters=1))
    other = stargan_train.StarGANTrainer(
        apply_overrides(stargan_train.StarGANConfig.smoke(), {"lambda_rec": "5"}),
        celeba_like(), CPU)
    with pytest.raises(SystemExit):
        train(other, RunOptions(out=tmp_path, seconds=600, iters=2, resume=True))


def test_fine_tune_continues_with_new_loss_weights_and_records_them(tmp_path: Path) -> None:
    def stronger() -> stargan_train.StarGANTrainer:
        return stargan_train.StarGANTrainer(
            apply_overrides(stargan_train.StarGANConfig.smoke(), {"lambda_cls": "3"}),
            celeba_like(), CPU)

    train(make_trainer("stargan"), RunOptions(out=tmp_path, seconds=600, iters=2))
    saved_d = torch.load(tmp_path / "stargan" / "ckpt.pt", weights_only=True)["trainer"]
    with pytest.raises(SystemExit, match="lambda_cls"):
        train(stronger(), RunOptions(out=tmp_path, seconds=600, iters=3, resume=True))
    # With no step left to take, a fine-tune holds the checkpoint's networks (the
    # discriminator, updated every iteration, differs from a fresh one).
    held = stronger()
    fresh_d = _params(held.nets["D"])
    card = train(held, RunOptions(out=tmp_path, seconds=600, iters=2, resume=True,
                                  fine_tune=True))
    assert _changed(fresh_d, held.nets["D"])
    for k, v in held.nets["D"].state_dict().items():
        assert torch.equal(v, saved_d["nets"]["D"][k]), k
    change = [{"iteration": 2, "changed": {"lambda_cls": [1.0, 3.0]}}]
    assert card["config_changes"] == change and card["config"]["lambda_cls"] == 3.0
    # It trains on with the new weight; a later plain resume keeps the record.
    tuned = stronger()
    card = train(tuned, RunOptions(out=tmp_path, seconds=600, iters=3, resume=True))
    assert card["resumed_from_iteration"] == 2 and card["iterations"] == 3
    assert card["config_changes"] == change and tuned.weights.lambda_g_cls == 3.0


def test_cli_fine_tune_implies_resume() -> None:
    args = parse_cli(["--pack", "p.npz", "--out", "o", "--fine-tune", "--set",
                      "lambda_cls=2"], "stargan")
    assert args.resume and args.fine_tune and args.overrides == {"lambda_cls": "2"}
    assert not parse_cli(["--pack", "p.npz", "--out", "o"], "stargan").fine_tune


def test_wall_clock_budget_stops_the_loop_but_still_writes_outputs(tmp_path: Path) -> None:
    card = train(make_trainer("cyclegan"), RunOptions(out=tmp_path, seconds=0.0, iters=100))
    assert card["iterations"] == 0
    assert (tmp_path / "cyclegan" / "final.pt").exists()
    assert (tmp_path / "cyclegan" / "final_old_to_young.pt").exists()


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SHARED.exists():
        pytest.skip("../shared/data not available")
    out = tmp_path_factory.mktemp("gan_pack") / "faces.npz"
    pack_faces(SHARED, out, limit=12, workers=1)
    return out


MAINS: dict[str, Callable[[list[str] | None], int]] = {
    "stargan": stargan_train.main, "attgan": attgan_train.main, "cyclegan": cyclegan_train.main,
}


@pytest.mark.parametrize("model", MODELS)
def test_cli_smoke_then_resume(model: str, pack: Path, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    try:
        args = ["--pack", str(pack), "--out", str(tmp_path), "--smoke", "--iters", "2"]
        assert MAINS[model](args) == 0
        assert MAINS[model]([*args[:-1], "3", "--resume"]) == 0
    finally:
        torch.set_num_threads(threads)
    card = json.loads((tmp_path / model / "train.json").read_text())
    assert card["iterations"] == 3 and card["resumed_from_iteration"] == 2
    assert card["data"]["split"] == "generator"
    _load_final(tmp_path / model, card)


@pytest.fixture(scope="module")
def pack96(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-face pack of 96 px crops (CelebA, UTKFace, LFW) from ../shared/data."""
    if not SHARED.exists():
        pytest.skip("../shared/data not available")
    path = tmp_path_factory.mktemp("gan_pack96") / "faces96.npz"
    pack_faces(SHARED, path, limit=6, workers=1, size=96)
    return path


def _smoke_train(main: Callable[[list[str]], int], pack: Path, out: Path,
                 model: str) -> dict[str, Any]:
    """Two smoke iterations through a trainer's command line; its ``train.json``."""
    threads = torch.get_num_threads()
    try:
        assert main(["--pack", str(pack), "--out", str(out), "--smoke", "--iters", "2"]) == 0
    finally:
        torch.set_num_threads(threads)
    return dict(json.loads((out / model / "train.json").read_text()))


def test_cli_stargan_trains_at_the_pack_size(pack96: Path, tmp_path: Path) -> None:
    assert tuple(load_faces(pack96, "celeba", "test").images.shape[1:]) == (3, 96, 96)
    card = _smoke_train(stargan_train.main, pack96, tmp_path, "stargan")
    assert card["config"]["image_size"] == 96 and card["config"]["d_repeat_num"] == 5
    assert card["input"]["size"] == [96, 96]
    net = _load_final(tmp_path / "stargan", card)
    with torch.no_grad():
        y = net.train()(torch.rand(1, 3, 96, 96) * 2 - 1, torch.zeros(1, 5))
    assert y.shape == (1, 3, 96, 96) and torch.isfinite(y).all()


def test_cli_attgan_trains_at_the_pack_size_with_the_official_depth(
        pack96: Path, tmp_path: Path) -> None:
    # The 96 px AttGAN study: a 96 px pack gives the official 5 layers (3x3 code).
    assert attgan_train.AttGANConfig().at_size(64) == attgan_train.AttGANConfig()
    with pytest.raises(ValueError, match="divisible"):
        attgan_train.AttGANConfig().at_size(80)
    card = _smoke_train(attgan_train.main, pack96, tmp_path, "attgan")
    kwargs = card["generator"]["kwargs"]
    assert kwargs["img_size"] == 96 and kwargs["enc_layers"] == kwargs["dec_layers"] == 5
    assert card["config"]["dis_layers"] == 5 and card["input"]["size"] == [96, 96]
    net = _load_final(tmp_path / "attgan", card)
    with torch.no_grad():
        y = net.eval()(torch.rand(1, 3, 96, 96) * 2 - 1, torch.zeros(1, len(CELEBA_ATTRS)))
    assert y.shape == (1, 3, 96, 96) and torch.isfinite(y).all()


def test_install_exports_a_96px_stargan_with_its_measured_card(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    # How a retrained model is shipped: `python -m targets.training.export NAME --out RUN
    # --pack PACK --weights DIR` writes fp16 weights and cards into DIR and measures the
    # model there with the evaluator already installed beside it.
    import shutil

    from targets.bundled import WEIGHTS_DIR, load_bundled
    from targets.training import export

    if not SHARED.exists():
        pytest.skip("../shared/data not available")
    pack96 = tmp_path_factory.mktemp("install_pack96") / "faces96.npz"
    pack_faces(SHARED, pack96, limit=4, workers=1, size=96)
    run, weights = tmp_path / "run", tmp_path / "weights"
    weights.mkdir()
    for ext in (".json", ".safetensors"):
        shutil.copy(WEIGHTS_DIR / f"evaluator_celeba{ext}", weights)
    assert export.main(["stargan.celeba96", "--out", str(run), "--pack", str(pack96),
                        "--weights", str(weights)]) == 2  # no training run yet
    threads = torch.get_num_threads()
    try:
        assert stargan_train.main(["--pack", str(pack96), "--out", str(run), "--smoke",
                                   "--iters", "2"]) == 0
        assert export.main(["stargan.celeba96", "--out", str(run), "--pack", str(pack96),
                            "--weights", str(weights)]) == 0
    finally:
        torch.set_num_threads(threads)
    card = json.loads((weights / "stargan_celeba96.json").read_text())
    assert card["name"] == "stargan.celeba96" and card["input_size"] == [96, 96]
    assert card["training"]["iterations"] == 2
    assert "96x96" in card["data"]["preprocessing_and_splits"]
    n_test = len(load_faces(pack96, "celeba", "test"))
    assert card["quality"]["n_test_images"] == n_test
    assert 0.0 <= card["quality"]["mean_success"] <= 1.0
    assert (weights / "stargan_celeba96.md").read_text().startswith("# stargan.celeba96")
    target = load_bundled("stargan.celeba96", weights)
    c = target.conditions[0].vector
    assert c is not None
    with torch.no_grad():
        y = target(torch.rand(1, 3, 64, 64), c.unsqueeze(0))
    assert y.shape == (1, 3, 96, 96)


def test_cli_reports_a_missing_pack(tmp_path: Path) -> None:
    assert stargan_train.main(["--pack", str(tmp_path / "none.npz"), "--out",
                               str(tmp_path)]) == 2


def test_lr_decay_is_linear_and_a_resumed_run_may_add_it(tmp_path: Path) -> None:
    assert [lr_factor(i, (4, 8)) for i in (0, 4, 6, 8, 9)] == [1.0, 1.0, 0.5, 0.0, 0.0]
    assert lr_factor(100, None) == 1.0
    trainer = make_trainer("stargan")
    base = {k: o.param_groups[0]["lr"] for k, o in trainer.optims.items()}
    train(trainer, RunOptions(out=tmp_path, seconds=600, iters=2))  # constant rate
    resumed = make_trainer("stargan")
    card = train(resumed, RunOptions(out=tmp_path, seconds=600, iters=4, resume=True,
                                     lr_decay=(1, 5)))
    assert card["resumed_from_iteration"] == 2 and card["iterations"] == 4
    assert card["lr_decay"] == [1, 5]
    # The last step ran at iteration 3: (5 - 3) / (5 - 1) of the base rate.
    for k, opt in resumed.optims.items():
        assert opt.param_groups[0]["lr"] == pytest.approx(base[k] * 0.5)
    with pytest.raises(ValueError, match="lr_decay"):
        train(make_trainer("stargan"), RunOptions(out=tmp_path / "x", seconds=600, iters=1,
                                                  lr_decay=(5, 5)))


def test_cli_reads_lr_decay() -> None:
    args = parse_cli(["--pack", "p.npz", "--out", "o", "--lr-decay", "5458:8500"], "stargan")
    assert args.lr_decay == (5458, 8500)
    with pytest.raises(SystemExit):
        parse_cli(["--pack", "p.npz", "--out", "o", "--lr-decay", "9:3"], "stargan")


def test_card_says_where_a_model_was_fine_tuned() -> None:
    from targets.training.export import markdown_card

    card = {"name": "stargan.x", "licence": "research only",
            "data": {"preprocessing_and_splits": "s", "split_used": "generator", "citation": "c"},
            "training": {"iterations": 9, "seconds": 1.0, "hardware": "cpu",
                         "hyper_parameters": {"lambda_cls": 3.0},
                         "config_changes": [{"iteration": 5,
                                             "changed": {"lambda_cls": [1.0, 3.0]}}]}}
    assert "- fine-tuned from iteration 5 with lambda_cls 1.0 -> 3.0" in markdown_card(card)
