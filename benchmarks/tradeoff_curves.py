"""Per-model trade-off curves: disruption against face-region PSNR, from
``benchmarks/default_protection.py`` runs (issue #9: "each missed aim has its trade-off
curve, per model").

    bash benchmarks/tradeoff_curves.sh FACES_DIR OUT_DIR      # the runs (one model each)
    python benchmarks/tradeoff_curves.py OUT_DIR/*.json [--plot curves.png] [--md curves.md]

Each JSON is one run; a run may attack one model (``--only NAME``) or several. For every
model the runs are sorted by the face-region PSNR they reached, and each point gives the
share of outputs disrupted (Ruiz MSE > 0.05) as saved and after JPEG 75, with the mean
Ruiz MSE as saved. The table also says, per model, the highest face PSNR at which it was
disrupted on at least 95% of outputs as saved (the issue's aim), if any run got there.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

AIM = 0.95  # issue #9: every model >= 95% disrupted as saved


def short_setting(run: dict[str, Any]) -> str:
    cap = run.get("max_change")
    parts = [f">= {run.get('psnr_floor') or 0:g} dB"]
    if cap:
        parts.append(f"cap {cap * 255:.0f}/255")
    parts.append("shaped" if run.get("perceptual") else "unshaped")
    if len(run.get("attacked", [])) > 1:
        parts.append(f"{run.get('objective')}, {len(run['attacked'])} models")
    return ", ".join(parts)


def points(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Model -> its points, sorted from the most visible change to the least."""
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        region = run["region_perceptibility"]
        for name in run.get("attacked", run["targets"]):
            by_model[name].append({
                "setting": short_setting(run),
                "face_psnr": region["psnr"], "ssim": region["ssim"],
                "ciede2000": region["ciede2000_mean"],
                "saved": run["disrupted_fraction"]["none"][name],
                "saved_ci95": run["disrupted_ci95"]["none"][name],
                "jpeg75": run["disrupted_fraction"]["jpeg:75"][name],
                "mse": run["mean_ruiz_mse"]["none"][name],
                "seconds": run["seconds_per_image"],
            })
    for pts in by_model.values():
        pts.sort(key=lambda p: p["face_psnr"])
    return dict(sorted(by_model.items()))


def highest_psnr_meeting_aim(pts: list[dict[str, Any]]) -> float | None:
    ok = [p["face_psnr"] for p in pts if p["saved"] >= AIM]
    return max(ok) if ok else None


def markdown(curves: dict[str, list[dict[str, Any]]], images: str) -> str:
    lines = [f"{images}; disrupted = Ruiz MSE > 0.05 (95% Wilson interval as saved)", "",
             "| model | setting | face PSNR | SSIM | CIEDE2000 | as saved | JPEG 75 "
             "| mean Ruiz MSE | s/face |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, pts in curves.items():
        for p in pts:
            lo, hi = p["saved_ci95"]
            lines.append(f"| {name} | {p['setting']} | {p['face_psnr']:.1f} dB | "
                         f"{p['ssim']:.3f} | {p['ciede2000']:.2f} | {p['saved'] * 100:.0f}% "
                         f"[{lo * 100:.0f}-{hi * 100:.0f}] | {p['jpeg75'] * 100:.0f}% | "
                         f"{p['mse']:.3f} | {p['seconds']:.1f} |")
    lines += ["", f"Highest face PSNR with >= {AIM * 100:.0f}% disrupted as saved:"]
    for name, pts in curves.items():
        best = highest_psnr_meeting_aim(pts)
        lines.append(f"- {name}: " + (f"{best:.1f} dB" if best is not None else
                                      f"never, down to {pts[0]['face_psnr']:.1f} dB "
                                      f"(best {max(p['saved'] for p in pts) * 100:.0f}%)"))
    return "\n".join(lines) + "\n"


def plot(curves: dict[str, list[dict[str, Any]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, title in ((axes[0], "saved", "as saved"), (axes[1], "jpeg75", "after JPEG 75")):
        for name, pts in curves.items():
            ax.plot([p["face_psnr"] for p in pts], [p[key] * 100 for p in pts], "o-",
                    label=name)
        ax.axhline(AIM * 100, color="grey", lw=0.8, ls="--")
        ax.axvline(35, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("face-region PSNR (dB)")
        ax.set_title(f"disrupted {title}")
        ax.invert_xaxis()  # left: visible change; right: invisible
    axes[0].set_ylabel("% of outputs (Ruiz MSE > 0.05)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG of the curves")
    parser.add_argument("--md", type=Path, default=None, help="write the table as markdown")
    args = parser.parse_args()
    runs = [json.loads(p.read_text()) for p in args.runs]
    curves = points(runs)
    text = markdown(curves, runs[0]["images"])
    print(text, end="")
    if args.md:
        args.md.write_text(text)
    if args.plot:
        plot(curves, args.plot)


if __name__ == "__main__":
    main()
