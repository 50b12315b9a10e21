"""Train every bundled model and evaluator in parallel, measure them, export the weights.

``python -m targets.training.run_all --pack .train/faces.npz --out DIR --seconds S [--smoke]``

1. Launches, as parallel subprocesses on the one device: the three evaluators
   (``targets.training.evaluators``), the face-swap trainer and the three GAN trainers
   (``stargan_train``, ``attgan_train``, ``cyclegan_train``), each with a wall-clock cap;
   logs go to ``DIR/logs/<job>.log``.
2. Exports fp16 safetensors and a JSON card per model into ``DIR/weights/``
   (the names ``targets.bundled`` loads), checking each against its network with a
   strict load first.
3. Measures manipulation quality on the test split (:mod:`targets.training.quality`)
   through the same loader users get, and adds it to the cards; writes a markdown card
   per model.
4. Tars ``DIR/weights`` into ``DIR/bundled_weights.tar.gz`` and writes ``DIR/report.json``.

A job that fails or produces nothing is reported and skipped; the others still ship.
``--smoke``: a few iterations of everything on the CPU, one thread per process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from targets.training.common import write_json
from targets.training.export import MODELS, export_evaluator, export_generator, markdown_card


@dataclass
class Job:
    name: str
    args: list[str]
    seconds: float
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    ended: float = 0.0
    returncode: int | None = None
    killed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# Where each bundled model's training run lives and what it is trained on.
# Evaluators are small: they get a share of the budget and leave the GPU to the GANs.
EVALUATOR_SHARE = {"celeba": 0.5, "utkface": 0.4, "lfw": 0.25}


def plan_jobs(pack: Path, out: Path, seconds: float, smoke: bool, seed: int) -> list[Job]:
    py = sys.executable
    common = ["--pack", str(pack), "--seed", str(seed)] + (["--smoke"] if smoke else [])
    logs = out / "logs"
    jobs = []
    for kind, share in EVALUATOR_SHARE.items():
        s = seconds if smoke else max(30.0, seconds * share)
        jobs.append(Job(f"evaluator_{kind}",
                        [py, "-m", "targets.training.evaluators", "--kind", kind,
                         "--out", str(out / "evaluators"), "--seconds", str(s), *common],
                        s, logs / f"evaluator_{kind}.log"))
    for info in MODELS.values():
        # A distilled model needs its trained teacher (python -m targets.training.<module>).
        if "teacher" in info:
            continue
        jobs.append(Job(info["run"],
                        [py, "-m", f"targets.training.{info['module']}",
                         "--out", str(out), "--seconds", str(seconds), *common],
                        seconds, logs / f"{info['run']}.log"))
    return jobs


def run_jobs(jobs: list[Job], grace: float, threads: int, log: Any) -> None:
    """Start every job at once; wait; kill any that overruns its cap by ``grace`` seconds."""
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                "PYTHONUNBUFFERED": "1"})
    for job in jobs:
        job.log.parent.mkdir(parents=True, exist_ok=True)
        fh = open(job.log, "wb")  # noqa: SIM115 - closed when the job ends
        job.extra["fh"] = fh
        job.started = time.monotonic()
        job.proc = subprocess.Popen(job.args, stdout=fh, stderr=subprocess.STDOUT, env=env)
        print(f"[run_all] started {job.name} (pid {job.proc.pid}, cap {job.seconds:.0f}s)",
              file=log, flush=True)
    pending = list(jobs)
    while pending:
        time.sleep(0.5)
        for job in list(pending):
            assert job.proc is not None
            rc = job.proc.poll()
            now = time.monotonic()
            if rc is None and now - job.started > job.seconds + grace:
                job.proc.kill()
                job.killed = True
                rc = job.proc.wait()
            if rc is not None:
                job.returncode = rc
                job.ended = now
                job.extra.pop("fh").close()
                pending.remove(job)
                state = "killed (overran)" if job.killed else f"exit {rc}"
                print(f"[run_all] {job.name}: {state} after {now - job.started:.0f}s",
                      file=log, flush=True)
                if rc != 0:
                    tail = job.log.read_bytes()[-1500:].decode("utf-8", "replace")
                    print(f"[run_all] --- tail of {job.log} ---\n{tail}", file=log, flush=True)


# ----------------------------------------------------------------------------- export


# ----------------------------------------------------------------------------- cards


# ----------------------------------------------------------------------------- main


def summarize_quality(q: dict[str, Any] | None) -> dict[str, Any] | None:
    if not q:
        return q
    keys = ("mean_success", "mean_success_changed", "reconstruction_l1")
    out = {k: q[k] for k in keys if k in q}
    for k, v in q.items():
        if isinstance(v, dict) and "success" in v:
            out[k] = {kk: v[kk] for kk in ("success", "success_binary", "cycle_l1",
                                           "reconstruction_l1") if kk in v}
        if k == "per_attribute":
            out["success_changed"] = {a: x["success_changed"] for a, x in v.items()}
    return out


def run_all(pack: Path, out: Path, seconds: float, *, smoke: bool, seed: int = 0,
            device: str | None = None, grace: float = 45.0, threads: int = 2,
            skip_training: bool = False, models: list[str] | None = None) -> dict[str, Any]:
    t0 = time.monotonic()
    log = sys.stderr
    out.mkdir(parents=True, exist_ok=True)
    jobs = plan_jobs(pack, out, seconds, smoke, seed)
    if not skip_training:
        run_jobs(jobs, grace, 1 if smoke else threads, log)
    t_train = time.monotonic() - t0
    dev = device or ("cpu" if smoke or not torch.cuda.is_available() else "cuda")
    if smoke:
        torch.set_num_threads(1)
    weights_dir = out / "weights"
    weights_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "jobs": {j.name: {"returncode": j.returncode, "killed": j.killed,
                          "wall_s": round(j.ended - j.started, 1) if j.ended else None}
                 for j in jobs},
        "models": {}, "evaluators": {}, "errors": {},
    }
    # ``models``: export / measure only these (e.g. one GAN retrained at another size)
    # and the evaluators they are measured with.
    names = list(models or [n for n, i in MODELS.items()
                         if "teacher" not in i or (out / i["run"] / "train.json").exists()])
    kinds = [k for k in EVALUATOR_SHARE if models is None
             or any(MODELS[n]["dataset"] == k for n in names)]
    for kind in kinds:
        try:
            card = export_evaluator(kind, out, weights_dir)
            (weights_dir / f"evaluator_{kind}.md").write_text(markdown_card(card))
            report["evaluators"][kind] = {"iterations": card.get("iterations"),
                                          "test": _short_test(card.get("test_fp16_weights"))}
        except Exception as exc:  # report and go on: the other models still ship
            report["errors"][f"evaluator_{kind}"] = f"{type(exc).__name__}: {exc}"
    from targets.training.quality import measure

    for name in names:
        try:
            card = export_generator(name, out, weights_dir)
        except Exception as exc:
            report["errors"][name] = f"export: {type(exc).__name__}: {exc}"
            continue
        try:
            card["quality"] = measure(name, weights_dir, pack, dev)
        except Exception as exc:
            report["errors"][f"{name} quality"] = f"{type(exc).__name__}: {exc}"
        write_json(card, weights_dir / card["file"].replace(".safetensors", ".json"))
        (weights_dir / card["file"].replace(".safetensors", ".md")).write_text(markdown_card(card))
        report["models"][name] = {"iterations": card["training"]["iterations"],
                                  "seconds": card["training"]["seconds"],
                                  "parameters": card["parameters"],
                                  "size_bytes": card["size_bytes"],
                                  "quality": summarize_quality(card["quality"])}
    files = sorted(p for p in weights_dir.iterdir() if p.is_file())
    total = sum(p.stat().st_size for p in files if p.suffix == ".safetensors")
    report["weights_total_bytes"] = total
    report["weights_files"] = [p.name for p in files]
    tar_path = out / "bundled_weights.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for p in files:
            tar.add(p, arcname=f"weights/{p.name}")
    report["tar"] = {"path": str(tar_path), "bytes": tar_path.stat().st_size}
    report["seconds"] = {"training_phase": round(t_train, 1),
                         "total": round(time.monotonic() - t0, 1)}
    report["device"] = (torch.cuda.get_device_name(0) if dev.startswith("cuda") else "cpu")
    write_json(report, out / "report.json")
    return report


def _short_test(test: Any) -> Any:
    if isinstance(test, dict) and "accuracy" in test and isinstance(test["accuracy"], dict):
        return {"mean_accuracy": test.get("mean_accuracy"),
                **{k: test["accuracy"][k] for k in ("Black_Hair", "Blond_Hair", "Brown_Hair",
                                                    "Male", "Young") if k in test["accuracy"]}}
    return test


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m targets.training.run_all")
    p.add_argument("--pack", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seconds", type=float, required=True, help="training cap per process")
    p.add_argument("--smoke", action="store_true", help="a few iterations of everything on CPU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="device for the quality measurement")
    p.add_argument("--threads", type=int, default=2, help="CPU threads per training process")
    p.add_argument("--grace", type=float, default=45.0,
                   help="seconds past its cap before a job is killed")
    p.add_argument("--skip-training", action="store_true",
                   help="only export / measure / pack existing runs in OUT")
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=None,
                   help="export and measure only these models (and their evaluators)")
    a = p.parse_args(argv)
    if not a.pack.exists():
        print(f"error: face pack {a.pack} not found", file=sys.stderr)
        return 2
    report = run_all(a.pack, a.out, a.seconds, smoke=a.smoke, seed=a.seed, device=a.device,
                     grace=a.grace, threads=a.threads, skip_training=a.skip_training,
                     models=a.models)
    print(json.dumps(report, indent=2))
    return 0 if not report["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
