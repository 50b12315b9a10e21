"""Dask distributed: bench grids and folder protection on a 2-process LocalCluster give
the bytes and numbers of the in-process run; worker death, bad photos, Ctrl-C and a
missing extra are handled. Tiny targets and images: this is about plumbing."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from disrupt.bench.config import BenchConfig, config_from_mapping
from disrupt.bench.grid import run_benchmark
from disrupt.cli import app
from disrupt.core.budget import resolve_budget
from disrupt.distributed import (
    INSTALL_HINT,
    DaskMissing,
    PhotoSettings,
    bench_executor,
    open_client,
    protect_many,
    require_dask,
)

pytest.importorskip("distributed")

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """Two worker processes, one thread each, no dashboard: the shape of a real cluster."""
    with open_client(workers=2, dashboard=False) as c:
        yield c


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(1)
    for name in ("a.png", "b.jpg", "c.png"):
        Image.fromarray(rng.integers(0, 256, size=(26, 30, 3), dtype=np.uint8)).save(folder / name)
    return folder


def _config(photos: Path, **changes: Any) -> BenchConfig:
    # batch_size 2 over 3 images: two chunks per cell, the second seeded on its own.
    settings: dict[str, Any] = {
        "images": str(photos), "targets": ["stargan.tiny"], "attacks": ["pgd"],
        "eps": ["8/255"], "steps": [3], "objectives": ["away", "spread"],
        "channels": ["none", "jpeg:75"], "batch_size": 2, "threads": 1, "grid_rows": 2,
    }
    settings.update(changes)
    return config_from_mapping(settings)


def _numbers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted((out / "cells").rglob("*")) if p.is_file()}


def _table(path: Path, drop: tuple[str, ...]) -> list[dict[str, str]]:
    with path.open() as fh:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(fh)]


def test_bench_on_a_cluster_writes_what_the_serial_run_writes(
        photos: Path, tmp_path: Path, client: Any) -> None:
    cfg = _config(photos)
    serial = run_benchmark(cfg, tmp_path / "serial")
    seen: list[tuple[int, int]] = []
    spread = run_benchmark(cfg, tmp_path / "dask", executor=bench_executor(client, cfg),
                           progress=lambda done, total, _what: seen.append((done, total)))
    assert _numbers(spread.rows) == _numbers(serial.rows) and serial.rows
    assert _numbers(spread.images) == _numbers(serial.images)
    files = _files(tmp_path / "serial")
    assert sum(name.endswith(".png") for name in files) == 2 * 3  # cells x images
    assert not any(name.split("/")[-1].startswith("chunk-") for name in files)
    assert _files(tmp_path / "dask") == {k: v for k, v in files.items()
                                         if not k.endswith("cell.json")} | {
        k: (tmp_path / "dask" / k).read_bytes() for k in files if k.endswith("cell.json")}
    for name in files:  # cell.json differs only by its seconds
        if name.endswith("cell.json"):
            a, b = (json.loads((tmp_path / d / name).read_text()) for d in ("serial", "dask"))
            assert _numbers(a["rows"]) == _numbers(b["rows"])
            assert _numbers(a["images"]) == _numbers(b["images"])
    assert _table(tmp_path / "dask" / "results.csv", ("seconds",)) == _table(
        tmp_path / "serial" / "results.csv", ("seconds",))
    assert _table(tmp_path / "dask" / "summary.csv", ("seconds_per_image",)) == _table(
        tmp_path / "serial" / "summary.csv", ("seconds_per_image",))
    assert seen[0] == (0, 4) and seen[-1] == (4, 4)  # one bar over every chunk
    # finished cells are never run again, on the cluster either
    again = run_benchmark(cfg, tmp_path / "dask", executor=bench_executor(client, cfg),
                          write=False)
    assert again.skipped == 2


def test_a_worker_killed_mid_task_has_its_task_run_elsewhere(
        photos: Path, tmp_path: Path, client: Any) -> None:
    cfg = _config(photos, steps=[80], objectives=["away"], resize=48, channels=["none"])
    serial = run_benchmark(cfg, tmp_path / "serial", write=False)
    pids = client.run(os.getpid)
    killed: list[tuple[str, str]] = []

    def executing(dask_worker: Any) -> list[str]:
        return [str(ts.key) for ts in dask_worker.state.executing]

    def kill_the_first_busy_worker() -> None:
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            for address, keys in client.run(executing).items():
                busy = [k for k in keys if k.startswith("bench-")]
                if busy:
                    os.kill(pids[address], signal.SIGKILL)
                    killed.append((address, busy[0]))
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_the_first_busy_worker)
    killer.start()
    result = run_benchmark(cfg, tmp_path / "dask", executor=bench_executor(client, cfg),
                           write=False)
    killer.join()
    assert killed, "no task was caught running"
    address, key = killed[0]

    def story(dask_scheduler: Any, key: str = key) -> list[Any]:
        return [list(entry) for entry in dask_scheduler.story(key)]

    ran = [e for e in client.run_on_scheduler(story) if len(e) > 2 and e[2] == "processing"]
    assert len(ran) >= 2  # sent out again after its worker died
    assert _numbers(result.rows) == _numbers(serial.rows)
    assert _files(tmp_path / "dask").keys() == _files(tmp_path / "serial").keys()
    for name, data in _files(tmp_path / "serial").items():
        if name.endswith(".png"):
            assert (tmp_path / "dask" / name).read_bytes() == data
    client.wait_for_workers(2, timeout=120)  # the nanny restarts it


def test_ctrl_c_cancels_the_queue_and_a_rerun_finishes_only_the_rest(
        photos: Path, tmp_path: Path, client: Any) -> None:
    cfg = _config(photos, objectives=["away"], channels=["none"], batch_size=1)
    serial = run_benchmark(cfg, tmp_path / "serial", write=False)

    def interrupt(done: int, _total: int, _what: str) -> None:
        if done >= 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_benchmark(cfg, tmp_path / "dask", executor=bench_executor(client, cfg),
                      progress=interrupt)
    assert not any(k.startswith("bench-") for k in map(str, client.futures))
    left = [p.name for p in (tmp_path / "dask").rglob("*")]
    assert not [n for n in left if n.endswith(".tmp")]
    chunks = [n for n in left if n.startswith("chunk-")]
    assert chunks and "cell.json" not in left
    seen: list[int] = []
    done = run_benchmark(cfg, tmp_path / "dask", executor=bench_executor(client, cfg),
                         write=False, progress=lambda d, _t, _w: seen.append(d))
    assert seen[0] == len(chunks)  # the chunks written before Ctrl-C were not run again
    assert _numbers(done.rows) == _numbers(serial.rows)


def _protect_inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for name in ("p1.png", "p2.jpg", "p3.png"):
        Image.fromarray(rng.integers(0, 256, size=(36, 40, 3), dtype=np.uint8)).save(
            folder / name)
    good = (folder / "p1.png").read_bytes()
    (folder / "bad.png").write_bytes(good[: len(good) // 2])  # truncated
    return folder


def test_protect_many_on_a_cluster_matches_in_process_and_a_bad_photo_fails_alone(
        tmp_path: Path, client: Any) -> None:
    folder = _protect_inputs(tmp_path)
    photos = sorted(folder.iterdir())
    settings = PhotoSettings(budget=resolve_budget("low", steps=2), targets=("stargan.tiny",),
                             seed=3)
    outs = {}
    for label, c in (("here", None), ("dask", client)):
        (tmp_path / label).mkdir()
        outs[label] = {o.index: o for o in protect_many(
            photos, settings, outputs=[tmp_path / label / f"{p.stem}.png" for p in photos],
            client=c)}
    for label in ("here", "dask"):
        bad = outs[label][0]
        assert bad.input.name == "bad.png" and bad.summary is None
        assert bad.error is not None and "bad.png" in bad.error and "\n" not in bad.error
        assert not (tmp_path / label / "bad.png").exists()
        assert all(outs[label][i].ok for i in (1, 2, 3))
    for i in (1, 2, 3):
        name = photos[i].stem + ".png"
        assert (tmp_path / "here" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes()
        a, b = (dict(outs[k][i].summary or {}) for k in ("here", "dask"))
        for d in (a, b):
            d.pop("seconds"), d.pop("output")
        assert a == b
    # the serial API gives the same bytes
    from disrupt.api import protect

    res = protect(photos[1], targets=["stargan.tiny"], budget=settings.budget, seed=3,
                  output=tmp_path / "one.png")
    assert res.output_path is not None
    assert res.output_path.read_bytes() == (tmp_path / "dask" / "p1.png").read_bytes()
    assert not list(tmp_path.rglob("*.tmp"))


def test_protect_cli_on_a_scheduler_matches_the_serial_cli(tmp_path: Path, client: Any) -> None:
    folder = _protect_inputs(tmp_path)
    common = ["protect", str(folder), "--target", "stargan.tiny", "--strength", "low",
              "--steps", "2", "--json", "-q"]
    (tmp_path / "serial").mkdir()
    (tmp_path / "dask").mkdir()
    serial = runner.invoke(app, [*common, "-o", f"{tmp_path / 'serial'}/"])
    spread = runner.invoke(app, [*common, "-o", f"{tmp_path / 'dask'}/",
                                 "--scheduler", client.scheduler.address])
    assert serial.exit_code == spread.exit_code == 1  # the truncated photo
    for res in (serial, spread):
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "bad.png" in errors[0] and "truncated" in errors[0]
    written = sorted(p.name for p in (tmp_path / "serial").iterdir())
    assert written == sorted(p.name for p in (tmp_path / "dask").iterdir())
    assert len(written) == 3
    for name in written:
        assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes()

    def summaries(text: str) -> list[dict[str, Any]]:
        rows = json.loads(text)
        for r in rows:
            r.pop("seconds"), r.pop("output")
        return list(rows)

    assert summaries(serial.stdout) == summaries(spread.stdout)


def test_bench_cli_on_a_scheduler_records_the_cluster(photos: Path, tmp_path: Path,
                                                     client: Any) -> None:
    args = ["bench", "--images", str(photos), "--limit", "2", "-t", "stargan.tiny",
            "--steps", "2", "--channel", "none", "--threads", "1", "--json", "-q"]
    serial = runner.invoke(app, [*args, "-o", str(tmp_path / "serial")])
    spread = runner.invoke(app, [*args, "-o", str(tmp_path / "dask"),
                                 "--scheduler", client.scheduler.address])
    assert serial.exit_code == spread.exit_code == 0, spread.stderr
    env = json.loads((tmp_path / "dask" / "results.json").read_text())["environment"]
    assert env["dask"]["workers"] == 2 and env["dask"]["threads"] == 2
    assert "dask" not in json.loads((tmp_path / "serial" / "results.json").read_text())[
        "environment"]
    assert _table(tmp_path / "dask" / "results.csv", ("seconds",)) == _table(
        tmp_path / "serial" / "results.csv", ("seconds",))


def test_cluster_options_are_checked_before_any_work(photos: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["bench", "--images", str(photos), "-t", "stargan.tiny",
                              "--workers", "0", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "--workers" in res.stderr
    res = runner.invoke(app, ["protect", str(photos), "-t", "stargan.tiny", "--workers", "2",
                              "--scheduler", "tcp://127.0.0.1:8786"])
    assert res.exit_code == 2 and "--scheduler" in res.stderr
    assert not list(tmp_path.iterdir())


def test_a_missing_extra_is_a_one_line_error(photos: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if absent
    with pytest.raises(DaskMissing, match=INSTALL_HINT.replace("[", r"\[").replace("]", r"\]")):
        require_dask()
    for args in (["bench", "--images", str(photos), "-t", "stargan.tiny", "--steps", "1",
                  "--workers", "2", "-o", str(tmp_path / "b")],
                 ["protect", str(photos), "-t", "stargan.tiny", "--workers", "2",
                  "-o", f"{tmp_path}/"]):
        res = runner.invoke(app, args)
        lines = res.stderr.strip().splitlines()
        assert res.exit_code == 1 and INSTALL_HINT in lines[-1], res.stderr
        assert [line for line in lines if line.startswith("error:")] == [lines[-1]]
    assert not list(tmp_path.glob("*.png"))


def test_importing_disrupt_never_imports_dask() -> None:
    code = ("import sys, disrupt, disrupt.distributed, disrupt.cli.bench, disrupt.cli.cluster; "
            "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
