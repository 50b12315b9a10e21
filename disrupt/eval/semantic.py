"""Semantic success: does the requested edit still happen on the protected image?

Pixel distances (Ruiz MSE) say the output changed; a separately trained classifier
(an *evaluator*, ``targets.training.evaluators``) says whether the edit the
manipulator asked for still shows. For condition ``c`` the edit *succeeds* on an
image when the evaluator finds the requested label on ``G(image, c)``:

- CelebA attribute edits (``stargan.celeba96``, ``attgan.celeba96``): the attribute
  named by the condition has a positive logit (independent sigmoids).
- Age (``cyclegan.utkface64``): ``to_old`` -> the age group ``old`` wins the
  argmax, ``to_young`` -> ``young``.
- Face swap (``faceswap.lfw64``): ``as_NAME`` -> identity ``NAME`` wins the argmax.

Compare the success rate on ``G(x, c)`` (clean) with that on ``G(x_adv, c)``
(protected): protection works semantically when the edit stops succeeding.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

__all__ = ["EVALUATED_TARGETS", "SemanticJudge", "expected_label", "load_judges"]

#: Bundled target -> the dataset whose evaluator judges its edits.
EVALUATED_TARGETS: dict[str, str] = {
    "stargan.celeba96": "celeba",
    "attgan.celeba96": "celeba",
    "cyclegan.utkface64": "utkface",
    "faceswap.lfw64": "lfw",
}


def expected_label(dataset: str, condition: str) -> str:
    """The evaluator label that condition ``condition`` asks for."""
    if dataset == "utkface":
        return {"to_old": "old", "to_young": "young"}.get(condition, condition)
    if dataset == "lfw":
        return condition.removeprefix("as_")
    return condition


@dataclass
class SemanticJudge:
    """An evaluator and how to read it.

    ``classifier(images)``: ``(N, 3, H, W)`` in ``[0, 1]`` -> logits ``(N, L)``;
    ``label_names`` names the ``L`` outputs; ``multilabel`` reads a positive logit as
    "present", otherwise the argmax is the label.
    """

    classifier: nn.Module
    label_names: list[str]
    multilabel: bool
    dataset: str = "custom"

    def knows(self, condition: str) -> bool:
        return expected_label(self.dataset, condition) in self.label_names

    @torch.no_grad()
    def success(self, edited: Tensor, condition: str) -> Tensor:
        """``(N, 3, h, w)`` edited images in ``[0, 1]`` -> ``(N,)`` bool: edit visible."""
        index = self.label_names.index(expected_label(self.dataset, condition))
        device = next(self.classifier.parameters()).device
        logits = self.classifier(edited.to(device)).float().cpu()
        if self.multilabel:
            return logits[:, index] > 0
        return logits.argmax(dim=1) == index


def load_judges(
    target_names: Iterable[str], device: str | torch.device = "cpu"
) -> tuple[dict[str, SemanticJudge], list[str]]:
    """Bundled evaluators for the targets that have one, and notes for the rest.

    Returns ``(judges, notes)``: ``judges[target_name]``; ``notes`` says in one line
    per target why semantic success is not measured for it (unknown target, or its
    evaluator is not installed yet).
    """
    judges: dict[str, SemanticJudge] = {}
    notes: list[str] = []
    loaded: dict[str, SemanticJudge | None] = {}
    for name in dict.fromkeys(target_names):
        dataset = EVALUATED_TARGETS.get(name)
        if dataset is None:
            notes.append(f"semantic success not measured for {name}: no evaluator for it")
            continue
        if dataset not in loaded:
            loaded[dataset], why = _load(dataset, device)
            if why:
                notes.append(f"semantic success not measured for {name}: {why}")
                continue
        judge = loaded[dataset]
        if judge is None:
            continue  # said once, for the first target of this dataset
        judges[name] = judge
    return judges, notes


def _load(dataset: str, device: str | torch.device) -> tuple[SemanticJudge | None, str]:
    """The judge, or ``None`` and the reason: not installed, or installed but refused
    (a checksum that does not match, a file that does not load). Import errors are
    bugs and propagate."""
    from targets.bundled import evaluator_installed, load_evaluator_for
    from targets.checkpoints import CheckpointError

    if not evaluator_installed(dataset):
        return None, (f"the {dataset} evaluator is not installed "
                      "(targets/weights/evaluator_*.safetensors)")
    try:
        model = load_evaluator_for(dataset, device=device)
    except (CheckpointError, OSError) as exc:
        log.warning("the %s evaluator is installed but failed to load: %s", dataset, exc)
        return None, f"the {dataset} evaluator is installed but failed to load ({exc})"
    names = [str(n) for n in getattr(model, "label_names", [])]
    multilabel = bool(getattr(model, "multilabel", dataset == "celeba"))
    if not names:
        return None, f"the {dataset} evaluator has no label names"
    return SemanticJudge(model, names, multilabel, dataset), ""
