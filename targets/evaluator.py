"""The face classifiers that judge whether an edit happened (the bundled evaluators).

:class:`FaceClassifier` is a small residual CNN on ``(B, 3, 64, 64)`` in ``[0, 1]``
returning logits; :func:`load_evaluator` reads one from fp16 safetensors (its config
and label names in the metadata), strictly. Training lives in
:mod:`targets.training.evaluators`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _Block(nn.Module):
    """Pre-activation-free basic residual block (conv-BN-ReLU-conv-BN + skip)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.skip(x))


class FaceClassifier(nn.Module):
    """A small ResNet for 64x64 faces.

    ``forward(x)``: ``x`` ``(B,3,64,64)`` RGB in ``[0,1]`` (other sizes are resized to
    64x64) -> logits ``(B, n_outputs)``. ``multilabel``: independent sigmoids (CelebA
    attributes) rather than one softmax. About 0.75M parameters at ``width=32``.
    Use in eval mode (BatchNorm running statistics).
    """

    def __init__(self, n_outputs: int, multilabel: bool, width: int = 32) -> None:
        super().__init__()
        self.n_outputs = n_outputs
        self.multilabel = multilabel
        self.width = width
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w),
                                  nn.ReLU())  # 32x32
        self.blocks = nn.Sequential(
            _Block(w, w, 1), _Block(w, 2 * w, 2), _Block(2 * w, 3 * w, 2), _Block(3 * w, 4 * w, 2)
        )  # 32 -> 16 -> 8 -> 4
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(4 * w, n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B,3,H,W) images, got {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != (64, 64):
            x = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False,
                              antialias=True)
        h = self.blocks(self.stem((x - 0.5) / 0.5))
        out: Tensor = self.head(self.drop(h.mean(dim=(2, 3))))
        return out

    def config(self) -> dict[str, object]:
        return {"n_outputs": self.n_outputs, "multilabel": self.multilabel, "width": self.width}


def build_classifier(kind: str, width: int = 32) -> tuple[FaceClassifier, int]:
    n = {"celeba": 40, "utkface": 3, "lfw": 2}[kind]
    return FaceClassifier(n, multilabel=(kind == "celeba"), width=width), n


def load_evaluator(path: str | Path, device: str | torch.device = "cpu") -> FaceClassifier:
    """Load an evaluator saved by :func:`train_evaluator` (fp16 -> fp32, eval mode, frozen)."""
    from safetensors import safe_open

    from targets.checkpoints import CheckpointError, load_state_dict_strict, read_checkpoint

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: evaluator weights not found")
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if "config" not in meta:
        raise CheckpointError(f"{path}: no 'config' in the safetensors metadata")
    cfg = json.loads(meta["config"])
    model = FaceClassifier(int(cfg["n_outputs"]), bool(cfg["multilabel"]), int(cfg["width"]))
    state = {k: (v.float() if v.is_floating_point() else v)
             for k, v in read_checkpoint(path).items() if isinstance(v, Tensor)}
    load_state_dict_strict(model, state, path)
    model.label_names = list(json.loads(meta.get("label_names", "[]")))  # type: ignore[assignment]
    return model.eval().requires_grad_(False).to(device)
