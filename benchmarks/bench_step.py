"""Cost of one attack step: our batched step against the research-code loop.

The research code (natanielruiz/disrupting-deepfakes) runs one forward per
condition and calls ``loss.backward()`` with the generator's parameters still
requiring gradients, so every step also computes gradients for ~8.4M weights it
never uses. Our step runs all conditions as one batch and asks autograd for the
input gradient only. Both are timed here, in the same process, on the full-size
StarGAN (conv_dim 64, 6 residual blocks, 5 CelebA conditions) at 128x128, and
their results are compared so the speed-up is at equal result.

Run: ``python benchmarks/bench_step.py [--steps 10] [--batch 1] [--threads 2]``
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from disrupt.objectives import AwayFromClean
from disrupt.speed import naive_step
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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)

    target = make_target(0).to(dev)
    x = torch.rand(args.batch, 3, 128, 128, generator=torch.Generator().manual_seed(1)).to(dev)
    objective = AwayFromClean(target, x)
    with torch.no_grad():
        y_clean = torch.stack([target(x, c.vector) for c in target.conditions])
    alpha = 2 / 255

    def timed(step_fn):  # type: ignore[no-untyped-def]
        step_fn(x)  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = x
        for _ in range(args.steps):
            out = step_fn(out)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / args.steps, out

    t_naive, x_naive = timed(lambda z: naive_step(target, z, y_clean, alpha))
    t_ours, x_ours = timed(lambda z: batched_step(objective, z, alpha))
    agree = (x_naive - x_ours).abs().le(1e-6).float().mean().item()
    print(f"device={dev} threads={args.threads} batch={args.batch} steps={args.steps} "
          f"conditions={len(target.conditions)} size=128x128")
    print(f"research-code loop : {t_naive * 1000:8.1f} ms/step")
    print(f"batched input-grad : {t_ours * 1000:8.1f} ms/step")
    print(f"speed-up           : {t_naive / t_ours:8.2f}x")
    print(f"same result        : {agree * 100:.3f}% of pixels identical after {args.steps} steps")


if __name__ == "__main__":
    main()
