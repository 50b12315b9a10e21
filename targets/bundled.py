"""Bundled surrogate targets: compact generators trained by this project, shipped in the package.

They make the default path work offline, without any official checkpoint:

- ``stargan.celeba96``: StarGAN (yunjey/stargan architecture, narrower), CelebA,
  5 labels (Black_Hair, Blond_Hair, Brown_Hair, Male, Young), 96x96.
- ``attgan.celeba96``: AttGAN (elvisyjlin/AttGAN-PyTorch architecture), CelebA,
  the 13 official attributes, 96x96 (the official 5-layer depth).
- ``cyclegan.utkface64``: two CycleGAN ResNet generators, UTKFace young (15-29)
  <-> old (50+), 64x64, in one module.
- ``faceswap.lfw64``: the classic deepfake autoencoder (shared encoder, one decoder
  per identity), LFW George_W_Bush <-> Colin_Powell, 64x64 face crops.
- ``pix2pix.celeba96``: a pix2pix U-Net (junyanz/pytorch-CycleGAN-and-pix2pix
  architecture, InstanceNorm, no dropout), CelebA gender swap distilled from the
  bundled StarGAN's successful edits, 96x96, unconditional.

Training code: ``targets/training/``. Data: CelebA (Liu et al. 2015), UTKFace (Zhang
et al. 2017), LFW (Huang et al. 2007); all **non-commercial research use only**,
and so are these weights. Each model's card (``targets/weights/<file>.json`` and
``.md``) records the architecture, data splits, iterations, hardware and the
manipulation quality measured by separately trained evaluators on held-out images.

Loading: the fp16 safetensors file in ``targets/weights/`` is checked against the
sha256 in its JSON card, converted to fp32 and loaded strictly. Mode: what each
model was trained and tested in, from its card: ``train`` for StarGAN (InstanceNorm
with per-image statistics, as the official test script; running statistics are
frozen and unused), ``eval`` for the others (AttGAN's BatchNorm uses its running
statistics, as the official ``test.py``; CycleGAN's and the pix2pix U-Net's
InstanceNorm keeps no running statistics and the face-swap model has no
normalisation, so both modes agree).

``BUNDLED_DEFAULT`` lists the models the default protection attacks and verifies;
a bundled model outside it (``in_default=False``) loads by name like any target.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

from targets.base import CallAdapter, Condition, GeneratorTarget, Mode, WeightsSpec
from targets.checkpoints import CheckpointError, load_state_dict_strict, read_checkpoint, sha256_of
from targets.registry import register_target

if TYPE_CHECKING:
    from targets.evaluator import FaceClassifier

WEIGHTS_DIR = Path(__file__).parent / "weights"
LICENCE = (
    "weights: non-commercial research use only (trained on CelebA / UTKFace / LFW, whose "
    "terms allow non-commercial research use); code: the project's licence"
)
STARGAN_ATTRS: tuple[str, ...] = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
AGE_DIRECTIONS: tuple[str, ...] = ("to_old", "to_young")
IDENTITIES: tuple[str, ...] = ("George_W_Bush", "Colin_Powell")


class CycleGANPair(nn.Module):
    """Both CycleGAN directions in one module, routed per sample by a condition.

    ``forward(x, c)``: ``x`` ``(B,3,H,W)`` in ``[-1,1]``; ``c`` ``(B,2)`` one-hot rows
    ``[to_old, to_young]``. Returns ``c[:,0] * g_young2old(x) + c[:,1] * g_old2young(x)``
    in ``(-1,1)``: each sample goes through the generator its row asks for; a generator
    no sample asks for is not run. State-dict keys: ``g_young2old.*``, ``g_old2young.*``.
    """

    def __init__(self, g_young2old: nn.Module, g_old2young: nn.Module) -> None:
        super().__init__()
        self.g_young2old = g_young2old
        self.g_old2young = g_old2young

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        if c.ndim == 1:
            c = c.expand(x.shape[0], -1)
        if tuple(c.shape) != (x.shape[0], 2):
            raise ValueError(
                f"condition must be (B, 2) rows [to_old, to_young], got {tuple(c.shape)}"
            )
        c = c.to(x.dtype)
        out: Tensor | None = None
        for k, g in enumerate((self.g_young2old, self.g_old2young)):
            w = c[:, k]
            if out is not None and not bool((w != 0).any()):
                continue
            term = w[:, None, None, None] * g(x)
            out = term if out is None else out + term
        assert out is not None
        return out


def _attgan_call(generator: nn.Module, x: Tensor, condition: Tensor | None) -> Tensor:
    from targets.attgan import attgan_call

    return attgan_call(generator, x, condition)


def _one_hot(names: Sequence[str]) -> tuple[Condition, ...]:
    eye = torch.eye(len(names))
    return tuple(Condition(n, eye[k].clone()) for k, n in enumerate(names))


@dataclass(frozen=True)
class BundledSpec:
    """What the code knows about a bundled target; the rest comes from its card."""

    name: str
    file: str
    description: str
    value_range: tuple[float, float]
    condition_names: tuple[str, ...]
    call: CallAdapter | None = None
    unconditional: bool = False  # one output, named by condition_names[0]
    in_default: bool = True  # attacked and verified by the default protection

    @property
    def card_file(self) -> str:
        return self.file.replace(".safetensors", ".json")

    def conditions(self) -> tuple[Condition, ...]:
        if self.unconditional:
            return (Condition(self.condition_names[0], None),)
        return _one_hot(self.condition_names)


def _attgan_attrs() -> tuple[str, ...]:
    from targets.attgan import CELEBA_ATTRS

    return tuple(CELEBA_ATTRS)


SPECS: dict[str, BundledSpec] = {
    s.name: s
    for s in (
        BundledSpec("stargan.celeba96", "stargan_celeba96.safetensors",
                    "bundled StarGAN, CelebA 5 labels (hair colour, Male, Young), 96x96; "
                    "condition k = one-hot label k",
                    (-1.0, 1.0), STARGAN_ATTRS),
        BundledSpec("attgan.celeba96", "attgan_celeba96.safetensors",
                    "bundled AttGAN, CelebA 13 attributes, 96x96; condition k = attribute k "
                    "on, the rest off (0/1, scaled to +-0.5 inside)",
                    (-1.0, 1.0), _attgan_attrs(), _attgan_call),
        BundledSpec("cyclegan.utkface64", "cyclegan_utkface64.safetensors",
                    "bundled CycleGAN pair, UTKFace young (15-29) <-> old (50+), 64x64; "
                    "conditions to_old / to_young",
                    (-1.0, 1.0), AGE_DIRECTIONS),
        BundledSpec("faceswap.lfw64", "faceswap_lfw64.safetensors",
                    "bundled deepfake autoencoder, LFW George_W_Bush <-> Colin_Powell, 64x64 "
                    "face crops; condition = whose decoder renders the face",
                    (0.0, 1.0), tuple(f"as_{n}" for n in IDENTITIES)),
        BundledSpec("pix2pix.celeba96", "pix2pix_celeba96.safetensors",
                    "bundled pix2pix U-Net, CelebA gender swap (distilled from the bundled "
                    "StarGAN), 96x96; unconditional",
                    (-1.0, 1.0), ("gender_swap",), unconditional=True, in_default=False),
    )
}
BUNDLED_DEFAULT: tuple[str, ...] = tuple(n for n, s in SPECS.items() if s.in_default)
EVALUATOR_FILES: dict[str, str] = {
    "celeba": "evaluator_celeba.safetensors",
    "utkface": "evaluator_utkface.safetensors",
    "lfw": "evaluator_lfw.safetensors",
}


# ----------------------------------------------------------------------------- networks


def _kwargs(arch: Mapping[str, Any], key: str = "kwargs") -> dict[str, Any]:
    kw = arch.get(key)
    if not isinstance(kw, Mapping):
        raise CheckpointError(f"model card architecture lacks {key!r}: {dict(arch)}")
    return dict(kw)


def build_network(name: str, architecture: Mapping[str, Any]) -> nn.Module:
    """The (untrained) network of bundled target ``name`` from its card's ``architecture``.

    Only the classes below are built, whatever the card says, chosen by the family
    (the name before the dot):
    ``stargan`` -> :class:`targets.stargan.StarGANGenerator`,
    ``attgan`` -> :class:`targets.attgan.AttGANGenerator`,
    ``cyclegan`` -> :class:`CycleGANPair` of two :class:`targets.cyclegan.ResnetGenerator`
    (``architecture['g_young2old']['kwargs']`` / ``['g_old2young']['kwargs']``),
    ``faceswap`` -> :class:`targets.faceswap.FaceSwapAutoencoder`,
    ``pix2pix`` -> :class:`targets.pix2pix.UnetGenerator`.
    """
    if name not in SPECS:
        raise KeyError(f"no bundled target {name!r}; choose one of {', '.join(SPECS)}")
    family = name.split(".")[0]
    if family == "stargan":
        from targets.stargan import StarGANGenerator

        return StarGANGenerator(**_kwargs(architecture))
    if family == "attgan":
        from targets.attgan import AttGANGenerator

        return AttGANGenerator(**_kwargs(architecture))
    if family == "cyclegan":
        from targets.cyclegan import ResnetGenerator

        parts = [architecture.get(k) for k in ("g_young2old", "g_old2young")]
        if not all(isinstance(p, Mapping) for p in parts):
            raise CheckpointError("cyclegan card needs architecture.g_young2old / g_old2young")
        return CycleGANPair(*(ResnetGenerator(**_kwargs(cast(Mapping[str, Any], p)))
                              for p in parts))
    if family == "faceswap":
        from targets.faceswap import FaceSwapAutoencoder

        return FaceSwapAutoencoder(**_kwargs(architecture))
    if family == "pix2pix":
        from targets.pix2pix import UnetGenerator

        return UnetGenerator(**_kwargs(architecture))
    raise KeyError(f"no bundled target {name!r}; choose one of {', '.join(SPECS)}")


def make_target(name: str, network: nn.Module, mode: Mode,
                input_size: tuple[int, int] = (64, 64)) -> GeneratorTarget:
    """Wrap a built and loaded bundled ``network`` as a :class:`GeneratorTarget`.

    Inputs ``(B,3,H,W)`` in ``[0,1]`` (resized to ``input_size`` inside, the size its
    card records; 64x64 for cards that record none); outputs ``(B,3,*input_size)`` in
    ``[0,1]``.
    """
    spec = SPECS[name]
    return GeneratorTarget(
        name,
        network,
        value_range=spec.value_range,
        input_size=input_size,
        conditions=spec.conditions(),
        call=spec.call,
        mode=mode,
    )


# ----------------------------------------------------------------------------- loading


def read_card(path: Path) -> dict[str, Any]:
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CheckpointError(f"model card {path} is missing") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"model card {path} is not valid JSON ({exc})") from exc
    if not isinstance(card, dict):
        raise CheckpointError(f"model card {path} is not a JSON object")
    return card


def _paths(name: str, weights: Path | None) -> tuple[Path, Path]:
    spec = SPECS[name]
    if weights is None:
        return WEIGHTS_DIR / spec.file, WEIGHTS_DIR / spec.card_file
    if weights.is_dir():
        return weights / spec.file, weights / spec.card_file
    return weights, weights.with_suffix(".json")


_PART = re.compile(r"^(?P<key>.+)::part(?P<i>\d+)of(?P<n>\d+)$")


def part_key(key: str, i: int, n: int) -> str:
    """The stored name of part ``i`` (0-based) of ``n`` of a tensor too big for one shard."""
    return f"{key}::part{i + 1}of{n}"


def join_parts(state: Mapping[str, Tensor], origin: Path) -> dict[str, Tensor]:
    """``state`` with every tensor stored in parts (:func:`part_key`) joined back along
    its first dimension; raises ``CheckpointError`` when a part is missing."""
    out: dict[str, Tensor] = {}
    parts: dict[str, dict[int, Tensor]] = {}
    counts: dict[str, int] = {}
    for key, value in state.items():
        m = _PART.match(key)
        if m is None:
            out[key] = value
            continue
        parts.setdefault(m["key"], {})[int(m["i"])] = value
        counts[m["key"]] = int(m["n"])
    for key, got in parts.items():
        if sorted(got) != list(range(1, counts[key] + 1)):
            raise CheckpointError(f"{origin}: {key} is stored in {counts[key]} parts, "
                                  f"found parts {sorted(got)}")
        out[key] = torch.cat([got[i] for i in sorted(got)], dim=0)
    return out


def shards_digest(shard_sha256s: Sequence[str]) -> str:
    """The card's ``sha256`` of a sharded model: sha256 of its shards' hex digests, in order."""
    return hashlib.sha256("".join(shard_sha256s).encode("ascii")).hexdigest()


def weight_files(card: Mapping[str, Any], cpath: Path, wpath: Path) -> list[tuple[Path, str]]:
    """``(path, sha256)`` of every file holding a model's weights, as its card lists them.

    A card with ``shards`` (bundled files are kept under 4 MiB each, see
    :func:`targets.training.common.save_fp16_shards`) names files beside the card;
    its ``sha256`` must equal :func:`shards_digest` of theirs. Otherwise the one file
    is ``wpath``, checked against the card's ``sha256``.
    """
    sha = card.get("sha256")
    if not isinstance(sha, str):
        raise CheckpointError(f"model card {cpath} has no sha256")
    shards = card.get("shards")
    if shards is None:
        return [(wpath, sha)]
    if not (isinstance(shards, list) and shards
            and all(isinstance(s, Mapping) and isinstance(s.get("file"), str)
                    and isinstance(s.get("sha256"), str) for s in shards)):
        raise CheckpointError(f"model card {cpath}: shards must list file and sha256")
    if shards_digest([s["sha256"] for s in shards]) != sha:
        raise CheckpointError(f"model card {cpath}: sha256 does not match its shards")
    return [(cpath.parent / s["file"], s["sha256"]) for s in shards]


def load_fp16_state(path: Path, expected_sha256: str | None) -> dict[str, Tensor]:
    """Read a safetensors file (after checking its sha256), floating tensors as fp32."""
    if expected_sha256 is not None:
        actual = sha256_of(path)
        if actual != expected_sha256:
            raise CheckpointError(
                f"{path}: sha256 {actual} does not match its model card ({expected_sha256})"
            )
    return {k: (v.float() if v.is_floating_point() else v)
            for k, v in read_checkpoint(path).items() if isinstance(v, Tensor)}


def weights_installed(name: str, weights: Path | None = None) -> bool:
    """Whether bundled target ``name``'s weights file and card are present (not verified)."""
    if name not in SPECS:
        return False
    wpath, cpath = _paths(name, weights)
    if not cpath.exists():
        return False
    try:
        return all(p.exists() for p, _ in weight_files(read_card(cpath), cpath, wpath))
    except CheckpointError:
        return False


def load_bundled(name: str, weights: Path | None = None) -> GeneratorTarget:
    """Build bundled target ``name`` on the CPU.

    ``weights``: ``None`` for the package's ``targets/weights/``; a folder holding the
    weights file and card under their usual names; or a ``.safetensors`` file with its
    card beside it (same name, ``.json``). Raises ``CheckpointError`` when the weights
    are absent, altered (sha256) or do not fit.
    """
    if name not in SPECS:
        raise KeyError(f"no bundled target {name!r}; choose one of {', '.join(SPECS)}")
    wpath, cpath = _paths(name, weights)
    if not cpath.exists():
        raise CheckpointError(f"bundled weights for {name} are not installed at {wpath}")
    card = read_card(cpath)
    files = weight_files(card, cpath, wpath)
    for path, _ in files:
        if not path.exists():
            raise CheckpointError(f"bundled weights for {name} are not installed at {path}")
    arch = card.get("architecture")
    if not isinstance(arch, Mapping):
        raise CheckpointError(f"model card {cpath} has no architecture")
    mode = card.get("inference_mode", "eval")
    if mode not in ("train", "eval"):
        raise CheckpointError(f"model card {cpath}: inference_mode must be train or eval")
    net = build_network(name, arch)
    state: dict[str, Tensor] = {}
    for path, sha in files:
        state.update(load_fp16_state(path, sha))
    load_state_dict_strict(net, join_parts(state, wpath), wpath)
    return make_target(name, net, cast(Mode, mode), _card_input_size(card, cpath))


#: Targets built by :func:`load_bundled_shared`: name -> (files' signature, target).
_SHARED: dict[str, tuple[tuple[tuple[str, int, int], ...], GeneratorTarget]] = {}
_SHARED_LOCK = threading.Lock()


def _files_signature(name: str) -> tuple[tuple[str, int, int], ...]:
    """``(path, size, mtime_ns)`` of the card and every weights file of package model ``name``."""
    wpath, cpath = _paths(name, None)
    try:
        paths = [cpath] + [p for p, _ in weight_files(read_card(cpath), cpath, wpath)]
        return tuple((str(p), (st := p.stat()).st_size, st.st_mtime_ns) for p in paths)
    except (OSError, CheckpointError):
        return ()  # load_bundled will say what is wrong


def load_bundled_shared(name: str) -> GeneratorTarget:
    """The package's own bundled target ``name``, built once per process and shared.

    ``protect`` and ``verify`` resolve their targets on every call; in an upload
    pipeline rebuilding and re-hashing the four default models cost about 0.04 s a
    call on 2 idle CPU cores, an eighth of a ``--fast --no-measure`` protection of a
    512 px photo. A built target is read-only (weights frozen, mode fixed), so one
    copy serves every call. It is built again, and so verified against its card
    again, whenever the card or a weights file changes on disk (size or modification
    time). Callers move it to their device in place
    (:func:`disrupt.core.seeding.move_to`), as with any target they are given.
    """
    signature = _files_signature(name)
    with _SHARED_LOCK:
        kept = _SHARED.get(name)
        if kept is not None and signature and kept[0] == signature:
            return kept[1]
        target = load_bundled(name)
        if signature:
            _SHARED[name] = (signature, target)
        return target


def _card_input_size(card: Mapping[str, object], cpath: Path) -> tuple[int, int]:
    """The model's input ``(H, W)`` from its card (``input_size``); 64x64 when absent."""
    size = card.get("input_size", (64, 64))
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and v > 0 for v in size)):
        raise CheckpointError(f"model card {cpath}: input_size must be [H, W], got {size!r}")
    return int(size[0]), int(size[1])


def _evaluator_path(dataset: str, weights: Path | None) -> Path:
    if weights is not None and not weights.is_dir():
        return weights
    return (weights if weights is not None else WEIGHTS_DIR) / EVALUATOR_FILES[dataset]


def evaluator_installed(dataset: str, weights: Path | None = None) -> bool:
    """Whether the bundled evaluator of ``dataset`` is present (not verified)."""
    return dataset in EVALUATOR_FILES and _evaluator_path(dataset, weights).exists()


def load_evaluator_for(dataset: str, weights: Path | None = None,
                       device: str | torch.device = "cpu") -> FaceClassifier:
    """The bundled evaluator of ``dataset`` ('celeba', 'utkface' or 'lfw'), eval mode, frozen.

    Input ``(B,3,H,W)`` in ``[0,1]``; output logits (40 CelebA attributes; 3 age groups
    young/middle/old; 2 identities George_W_Bush/Colin_Powell). ``weights`` as in
    :func:`load_bundled`. The sha256 in the evaluator's card is checked when present.
    """
    from targets.evaluator import load_evaluator

    if dataset not in EVALUATOR_FILES:
        raise KeyError(f"no evaluator for {dataset!r}; choose one of {', '.join(EVALUATOR_FILES)}")
    path = _evaluator_path(dataset, weights)
    if not path.exists():
        raise CheckpointError(f"bundled evaluator for {dataset} is not installed at {path}")
    cpath = path.with_suffix(".json")
    if cpath.exists():
        sha = read_card(cpath).get("sha256")
        if isinstance(sha, str) and sha256_of(path) != sha:
            raise CheckpointError(f"{path}: sha256 does not match its model card")
    return load_evaluator(path, device)


# ----------------------------------------------------------------------------- registry


def _weights_spec(spec: BundledSpec) -> WeightsSpec:
    sha: str | None = None
    card_path = WEIGHTS_DIR / spec.card_file
    size = (64, 64)
    if card_path.exists():
        try:
            card = json.loads(card_path.read_text())
            value = card.get("sha256")
            sha = value if isinstance(value, str) else None
            size = _card_input_size(card, card_path)
        except (OSError, json.JSONDecodeError, CheckpointError):
            sha = None
    return WeightsSpec(
        file=spec.file,
        sha256=sha,
        input_size=size,
        value_range=spec.value_range,
        licence=LICENCE,
        provenance="trained by targets/training on ../shared/data; see the model card "
                   f"targets/weights/{spec.card_file}",
    )


def _register(spec: BundledSpec) -> None:
    def factory(weights: Path | None) -> GeneratorTarget:
        return load_bundled(spec.name, weights)

    factory.__doc__ = spec.description
    register_target(spec.name, description=spec.description, weights=_weights_spec(spec),
                    needs_weights=False, bundled=True)(factory)


for _spec in SPECS.values():
    _register(_spec)
