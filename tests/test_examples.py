"""The README quick start and every example script run, on the bundled models."""

from __future__ import annotations

import json
import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from disrupt.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def test_readme_quick_start(tmp_path: Path) -> None:
    """`disrupt protect examples/astronaut.png`, as the README shows it (on a copy)."""
    readme = (ROOT / "README.md").read_text()
    assert "disrupt protect examples/astronaut.png" in readme
    photo = tmp_path / "astronaut.png"
    shutil.copy(EXAMPLES / "astronaut.png", photo)
    res = CliRunner().invoke(app, ["protect", str(photo), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    out = Path(summary["output"])
    assert out == tmp_path / "astronaut.protected.png" and out.exists()
    assert Image.open(out).size == Image.open(photo).size
    assert summary["perceptibility"]["linf_255"] <= 16 + 1e-4  # mid: the cap
    assert summary["attack"]["psnr_floor"] == 33.0
    assert {d["target"].split("@")[0] for d in summary["disruption"]} == {
        "stargan.celeba96", "attgan.celeba96", "cyclegan.utkface64", "faceswap.lfw64"}


def test_protect_example_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "grid.png"
    monkeypatch.setattr(sys, "argv", ["protect_example.py", "--out", str(out)])
    runpy.run_path(str(EXAMPLES / "protect_example.py"), run_name="__main__")
    grid = np.asarray(Image.open(out))
    assert grid.shape[0] > 4 * 128 and grid.shape[1] >= 4 * 128


def test_readme_summary_comes_from_its_results_file() -> None:
    """The summary the README shows is a copy of a committed run's output."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("The summary for this photo", 1)[1].split("```text", 1)[1]
    shown = [line for line in block.split("```", 1)[0].strip().splitlines()
             if line.strip() != "..."]
    recorded = (ROOT / "benchmarks" / "results" / "astronaut_summary.txt").read_text()
    assert len(shown) >= 8
    missing = [line for line in shown if line not in recorded.splitlines()]
    assert not missing, missing
