"""`disrupt bench`: the grid, its outputs, the cell cache, determinism, transfer, config errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import disrupt.bench.grid as benchmark
from disrupt.bench.cells import build_cells
from disrupt.bench.config import BenchConfig, ConfigError, config_from_mapping, load_config
from disrupt.bench.grid import run_benchmark
from disrupt.cli import app
from disrupt.eval.figures import grid_size
from disrupt.eval.semantic import SemanticJudge
from targets.evaluator import FaceClassifier

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 30x26 photos (tiny: the grid is about plumbing, not quality)."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg", "c.png"):
        Image.fromarray(rng.integers(0, 256, size=(26, 30, 3), dtype=np.uint8)).save(folder / name)
    return folder


def _config(photos: Path, **changes: Any) -> BenchConfig:
    settings: dict[str, Any] = {
        "images": str(photos), "limit": 2, "targets": ["stargan.tiny"], "attacks": ["pgd"],
        "eps": ["8/255"], "steps": [2], "objectives": ["away"], "channels": ["none", "jpeg:75"],
        "grid_rows": 4,
    }
    settings.update(changes)
    return config_from_mapping(settings)


def _numbers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_grid_writes_every_output_with_the_expected_cells(photos: Path, tmp_path: Path) -> None:
    cfg = _config(photos, attacks=["fgsm", "pgd"], eps=["4/255", "8/255"],
                  objectives=["away", "toward"])
    result = run_benchmark(cfg, tmp_path)
    # fgsm: 2 budgets x 2 objectives (steps ignored); pgd: 2 budgets x 1 steps x 2 objectives
    assert len(result.cells) == 8
    assert len(result.aggregates) == 8 * 2  # x channels
    assert len(result.rows) == 8 * 2 * 2 * 5  # x channels x images x conditions
    for kind in ("json", "csv", "summary_csv", "images_csv", "markdown", "plot_budget",
                 "plot_channels", "grid"):
        assert result.files[kind].exists(), kind
    data = json.loads((tmp_path / "results.json").read_text())
    env = data["environment"]
    assert env["seed"] == 0 and env["device"] == "cpu" and env["torch_threads"] >= 1
    assert env["packages"]["torch"] and env["packages"]["kornia"]
    assert "git_commit" in env and data["config"]["eps_255"] == [4.0, 8.0]
    with (tmp_path / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(result.rows)
    assert {"attack", "eps", "channel", "ruiz_mse"} <= set(rows[0])
    md = (tmp_path / "summary.md").read_text()
    assert md.count("| stargan.tiny | stargan.tiny |") == 16 and "> 0.05" in md
    assert Image.open(tmp_path / "grid.png").size == grid_size(4, 4, 96)
    for png in ("disruption_vs_budget.png", "channels.png"):
        assert Image.open(tmp_path / png).format == "PNG"
    # every cell saved its protected images, within budget, on the 8-bit grid
    cell = next(c for c in result.cells if c.cell.attack == "pgd" and c.cell.eps == 4 / 255)
    assert cell.folder is not None
    saved = np.asarray(Image.open(cell.folder / "a.png"), dtype=np.int16)
    clean = np.asarray(Image.open(photos / "a.png"), dtype=np.int16)
    assert 0 < np.abs(saved - clean).max() <= 4


def test_strength_presets_are_cells_of_the_grid(photos: Path, tmp_path: Path) -> None:
    cfg = _config(photos, attacks=[], strengths=["low"], channels=["none"])
    assert [c.attack for c in build_cells(cfg, ["stargan.tiny"])] == ["preset:low"]
    result = run_benchmark(cfg, tmp_path, write=False)
    images = result.images
    assert len(images) == 2 and all(r["attack"] == "preset:low" for r in images)
    # protect() at low: PSNR floor 37 dB, cap 8/255, on every image as saved.
    assert all(37 - 1e-3 <= r["image_psnr"] < 38 for r in images)
    assert all(r["image_linf_255"] <= 8 + 1e-4 for r in images)
    assert {r["attack"] for r in result.rows} == {"preset:low"}
    with pytest.raises(ConfigError, match="strengths"):
        _config(photos, strengths=["extreme"])


def test_rerun_skips_finished_cells(photos: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = benchmark.make_attack

    def counting(cell: Any) -> Any:
        calls.append(cell.label)
        return original(cell)

    monkeypatch.setattr(benchmark, "make_attack", counting)
    first = run_benchmark(_config(photos), tmp_path, write=False)
    assert len(calls) == 1 and first.skipped == 0
    again = run_benchmark(_config(photos), tmp_path, write=False)
    assert len(calls) == 1 and again.skipped == 1
    assert _numbers(again.rows) == _numbers(first.rows)
    wider = run_benchmark(_config(photos, eps=["8/255", "4/255"]), tmp_path, write=False)
    assert len(calls) == 2 and wider.skipped == 1  # only the new budget ran


def test_same_settings_give_the_same_numbers(photos: Path, tmp_path: Path) -> None:
    cfg = _config(photos, objectives=["iterative", "spread"], channels=["none", "blur:1.5"])
    one = run_benchmark(cfg, tmp_path / "one", write=False)
    two = run_benchmark(cfg, tmp_path / "two", write=False)
    assert two.skipped == 0
    assert _numbers(one.rows) == _numbers(two.rows)
    assert _numbers(one.images) == _numbers(two.images)


def test_transfer_cell_evaluates_on_the_other_target(photos: Path, tmp_path: Path) -> None:
    cfg = _config(photos, evaluate_on=["cyclegan.tiny"], channels=["none"])
    result = run_benchmark(cfg, tmp_path, write=False)
    by_target = {a["evaluated_on"]: a for a in result.aggregates}
    assert set(by_target) == {"stargan.tiny", "cyclegan.tiny"}
    assert by_target["cyclegan.tiny"]["transfer"] and not by_target["stargan.tiny"]["transfer"]
    assert by_target["cyclegan.tiny"]["n"] == 2  # 2 images x 1 (unconditional) output
    assert by_target["stargan.tiny"]["target"] == by_target["cyclegan.tiny"]["target"]


def test_specific_attacks_each_condition_separately(photos: Path, tmp_path: Path) -> None:
    result = run_benchmark(_config(photos, objectives=["specific"], channels=["none"], limit=1),
                           tmp_path, write=False)
    rows = result.rows
    assert len(rows) == 5  # one per condition, each judged on its own condition
    assert all(r["attacked_condition"] == r["condition"] for r in rows)
    folder = result.cells[0].folder
    assert folder is not None and len(list(folder.glob("a.*.png"))) == 5


def test_semantic_success_with_an_evaluator(photos: Path, tmp_path: Path) -> None:
    from targets.stargan import celeba_conditions

    torch.manual_seed(0)
    names = [c.name for c in celeba_conditions()] + [f"other{i}" for i in range(35)]
    judge = SemanticJudge(FaceClassifier(40, multilabel=True, width=4).eval(), names, True,
                          "celeba")
    result = run_benchmark(_config(photos, channels=["none"]), tmp_path, write=False,
                           judges={"stargan.tiny": judge})
    assert all(isinstance(r["edit_success_protected"], bool) for r in result.rows)
    agg = result.aggregates[0]
    assert agg["semantic_n"] == 10 and agg["edit_success_clean"] is not None


def test_missing_evaluators_are_skipped_with_a_note(photos: Path, tmp_path: Path) -> None:
    result = run_benchmark(_config(photos, channels=["none"]), tmp_path, write=False)
    assert any("semantic success not measured for stargan.tiny" in n for n in result.notes)
    assert all(r["edit_success_clean"] is None for r in result.rows)


def test_cli_runs_a_json_config_and_resumes(photos: Path, tmp_path: Path) -> None:
    config = tmp_path / "grid.json"
    config.write_text(json.dumps({"images": str(photos), "limit": 1, "targets": ["stargan.tiny"],
                                  "steps": 1, "channels": ["none"]}))
    out = tmp_path / "out"
    res = runner.invoke(app, ["bench", str(config), "-o", str(out), "--json", "-q"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["cells"] == 1 and data["skipped"] == 0 and Path(data["files"]["json"]).exists()
    res = runner.invoke(app, ["bench", str(config), "-o", str(out), "--json", "-q"])
    assert json.loads(res.stdout)["skipped"] == 1


@pytest.mark.parametrize(("content", "suffix", "message"), [
    ('bogus = 1\n', ".toml", "unknown config key"),
    ('eps = ["8/0"]\n', ".toml", "eps"),
    ('eps = [2.0]\n', ".toml", "outside (0, 1]"),
    ('objectives = ["sideways"]\n', ".toml", "objectives"),
    ('channels = ["jpeg:500"]\n', ".toml", "JPEG quality"),
    ('attacks = ["nope"]\n', ".toml", "unknown attack"),
    ('steps = 0\n', ".toml", "steps"),
    ('eps = [\n', ".toml", "grid"),
    ('[1, 2]', ".json", "table/object"),
    ('eps = 1', ".yaml", ".toml or .json"),
])
def test_bad_config_is_a_usage_error(tmp_path: Path, photos: Path, content: str, suffix: str,
                                     message: str) -> None:
    config = tmp_path / f"grid{suffix}"
    config.write_text(content)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.")):
        load_config(config)
    res = runner.invoke(app, ["bench", str(config), "--images", str(photos),
                              "-o", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and len(res.stderr.strip().splitlines()) == 1


def test_bad_options_are_usage_errors(photos: Path, tmp_path: Path) -> None:
    for extra in (["--eps", "abc"], ["--channel", "blur"], ["--target", "no.such"]):
        res = runner.invoke(app, ["bench", "--images", str(photos), "-o", str(tmp_path), *extra])
        assert res.exit_code == 2, (extra, res.output)


def test_paper_protocol_config_is_valid() -> None:
    cfg = load_config(REPO / "benchmarks" / "ruiz2020.toml")
    assert cfg.eps == (0.025,) and cfg.alpha == 0.005 and cfg.steps == (10,)
    assert (cfg.center_crop, cfg.resize, cfg.start, cfg.limit) == (89, 96, "009001.jpg", 50)
    assert cfg.images is None  # the data folder is passed on the command line
    assert "blur:1.5" in cfg.channels and cfg.threshold == 0.05
    cells = build_cells(cfg, cfg.targets)
    assert len(cells) == 3 * 4  # fgsm, ifgsm, pgd x specific, iterative, joint, spread
    assert {c.alpha for c in cells if c.attack != "fgsm"} == {0.005}
    assert {c.steps for c in cells if c.attack == "fgsm"} == {1}


def test_presets_config_is_valid() -> None:
    cfg = load_config(REPO / "benchmarks" / "presets.toml")
    assert cfg.attacks == () and cfg.strengths == ("low", "mid")
    assert (cfg.center_crop, cfg.resize, cfg.start) == (89, None, "009401.jpg")
    cells = build_cells(cfg, cfg.targets)
    assert [c.attack for c in cells[:2]] == ["preset:low", "preset:mid"]
    assert len(cells) == 2 * len(cfg.targets)


def test_celeba_crop_matches_center_crop_then_resize(tmp_path: Path) -> None:
    arr = np.random.default_rng(1).integers(0, 256, size=(109, 89, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "009001.png")
    image = benchmark.load_bench_image(tmp_path / "009001.png", 89, 64)
    expected = Image.fromarray(arr[10:99]).resize((64, 64), Image.Resampling.BILINEAR)
    got = (image.x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(got, np.asarray(expected))


def test_speed_benchmark_cli(tmp_path: Path) -> None:
    res = runner.invoke(app, ["bench", "--speed", "-t", "stargan.tiny", "--size", "40x32",
                              "--threads", "1", "-o", str(tmp_path), "--json", "-q"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    row, loops = payload["rows"][0], payload["loops"]
    assert (row["width"], row["height"]) == (40, 32) and row["protect_s"] > 0
    assert loops["naive_s"] > 0 and loops["ours_s"] > 0 and loops["same_pixels"] >= 0.99
    saved = json.loads((tmp_path / "speed.json").read_text())
    assert saved["environment"]["torch_threads"] == 1  # --threads reaches the run
    assert "threads 1, commit" in (tmp_path / "speed.md").read_text()
    res = runner.invoke(app, ["bench", "--speed", "--size", "huge", "-o", str(tmp_path)])
    assert res.exit_code == 2


def test_naive_loop_leaves_the_target_frozen(cond_target, images) -> None:  # type: ignore[no-untyped-def]
    from disrupt.bench.speed import naive_attack

    x_adv = naive_attack([cond_target], images, eps=4 / 255, alpha=1 / 255, steps=2,
                         generator=torch.Generator().manual_seed(0))
    assert (x_adv - images).abs().max() <= 4 / 255 + 1e-6
    assert all(not p.requires_grad and p.grad is None for p in cond_target.parameters())


def test_bundled_targets_get_an_evaluator_or_a_note() -> None:
    from disrupt.eval.semantic import load_judges

    names = ["stargan.celeba96", "cyclegan.utkface64", "faceswap.lfw64", "stargan.tiny"]
    judges, notes = load_judges(names)
    for name in names[:3]:
        assert name in judges or any(name in n and "not installed" in n for n in notes)
    assert any("stargan.tiny: no evaluator" in n for n in notes)


def test_benchmark_results_record_the_command_and_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from disrupt.bench.report import timing_parser, write_results_json

    args = timing_parser("Times a thing.\n\nMore.").parse_args(
        ["--threads", "1", "--out", str(tmp_path / "deep" / "r.json")])
    assert args.threads == 1
    monkeypatch.setattr("sys.argv", ["benchmarks/x.py", "--threads", "1"])
    write_results_json(args.out, {"rows": [{"seconds": 1.5}]})
    record = json.loads(args.out.read_text())
    assert record["command"] == "python benchmarks/x.py --threads 1"
    assert record["rows"] == [{"seconds": 1.5}]
    assert record["environment"]["torch_threads"] >= 1
    write_results_json(None, {"rows": []})  # no --out: nothing written, no error
    assert timing_parser("Doc.").parse_args([]).out is None
