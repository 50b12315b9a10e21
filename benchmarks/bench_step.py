"""Cost of one attack step: our batched step against the research-code loop.

The research code (natanielruiz/disrupting-deepfakes) runs one forward per
condition and calls ``loss.backward()`` with the generator's parameters still
requiring gradients, so every step also computes gradients for ~8.4M weights it
never uses. Our step runs all conditions as one batch and asks autograd for the
input gradient only. Both are timed here, in the same process, on the full-size
StarGAN (conv_dim 64, 6 residual blocks, 5 CelebA conditions) at 128x128, and
their results are compared so the speed-up is at equal result.

Run: ``python benchmarks/bench_step.py [--steps 10] [--batch 1] [--threads 2] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from disrupt.bench.speed import naive_step
from disrupt.core.objectives import AwayFromClean
from targets.base import Condition, GeneratorTarget
from targets.stargan import StarGANGenerator

ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")


def make_target(seed: int) -> GeneratorTarget:
    torch.manual_seed(seed)
    net = StarGANGenerator(conv_dim=64, c_dim=5, repeat_num=6)
    conds = [Condition(a, F.one_hot(torch.tensor(i), 5).float()) for i, a in enumerate(ATTRS)]
    return GeneratorTarget("stargan.bench", net, input_size=(128, 128), conditions=conds,
                           mode="train")


def batched_step(objective: AwayFromClean, x_adv: torch.Tensor, alpha: float) -> torch.Tensor:
    x_adv = x_adv.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(objective(x_adv).sum(), x_adv)
    return (x_adv + alpha * grad.sign()).clamp(0, 1).detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)

    target = make_target(0).to(dev)
    rng = torch.Generator().manual_seed(1)
    x = torch.rand(args.batch, 3, 128, 128, generator=rng).to(dev)
    # Both loops start from the same random point in the eps ball (PGD's random start):
    # at x itself the plain distance has a zero gradient and neither would move.
    eps, alpha = 8 / 255, 2 / 255
    start = (x + (torch.rand(x.shape, generator=rng).to(dev) * 2 - 1) * eps).clamp(0, 1)
    objective = AwayFromClean(target, x, tie_break=0.0)  # the plain distance, as the naive loop
    with torch.no_grad():
        y_clean = torch.stack([target(x, c.vector) for c in target.conditions])

    def run(step_fn):  # type: ignore[no-untyped-def]
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = start
        for _ in range(args.steps):
            out = step_fn(out)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / args.steps, out

    naive = lambda z: naive_step(target, z, y_clean, alpha)  # noqa: E731
    ours = lambda z: batched_step(objective, z, alpha)  # noqa: E731
    naive(start), ours(start)  # warm-up
    t_naive, t_ours = [], []
    for _ in range(args.repeats):  # interleaved, so background load hits both alike
        t, x_naive = run(naive)
        t_naive.append(t)
        t, x_ours = run(ours)
        t_ours.append(t)
    best_naive, best_ours = min(t_naive), min(t_ours)
    agree = (x_naive - x_ours).abs().le(1e-6).float().mean().item()
    with torch.no_grad():
        score_naive = objective(x_naive).mean().item()
        score_ours = objective(x_ours).mean().item()
    print(f"device={dev} threads={args.threads} batch={args.batch} steps={args.steps} "
          f"repeats={args.repeats} conditions={len(target.conditions)} size=128x128 "
          f"torch={torch.__version__}")
    print(f"research-code loop : {best_naive * 1000:8.1f} ms/step (best of {args.repeats})")
    print(f"batched input-grad : {best_ours * 1000:8.1f} ms/step (best of {args.repeats})")
    print(f"speed-up           : {best_naive / best_ours:8.2f}x")
    print(f"same result        : {agree * 100:.2f}% of pixels identical after {args.steps} "
          f"steps; objective {score_naive:.5f} (naive) vs {score_ours:.5f} (ours)")


if __name__ == "__main__":
    main()
