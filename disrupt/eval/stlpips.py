"""ST-LPIPS, the shift-tolerant learned perceptual distance, from the
``stlpips-pytorch`` wheel (which carries its AlexNet and VGG weights, so it works
offline). Built with ``pretrained=False`` and its keys checked by hand, because the
package loads with ``strict=False``; its prints are silenced. Report it as ST-LPIPS,
not LPIPS.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import sys
import types
from collections.abc import Callable, Iterator
from itertools import chain
from pathlib import Path

import torch
from torch import Tensor, nn

from disrupt.eval.metrics import _check_pair

#: Networks of :func:`st_lpips` (both ship inside the ``stlpips-pytorch`` wheel).
ST_LPIPS_NETS = ("alex", "vgg")


#: Smallest height and width each network accepts (its reflection padding needs it).
ST_LPIPS_MIN_SIZE = {"alex": 21, "vgg": 18}


_STLPIPS = "stlpips_pytorch"


#: The wheel's version, whose weight files and key layout were checked.
_STLPIPS_PIN = "stlpips-pytorch==0.0.2"


#: Modules ``stlpips_pytorch`` imports at top level without declaring them and never
#: calls on the path used here (debugging helpers): ``(module, name imported)``.
_UNDECLARED_IMPORTS = (("IPython", "embed"), ("torchsummary", "summary"))


def st_lpips_available() -> bool:
    """Whether the optional package ``stlpips-pytorch`` (for :func:`st_lpips`) is installed."""
    return importlib.util.find_spec(_STLPIPS) is not None


def _not_available(name: str) -> Callable[..., None]:
    def unavailable(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{name} is not installed (stlpips_pytorch imports it for debugging)")

    return unavailable


@contextlib.contextmanager
def _undeclared_imports_stubbed() -> Iterator[None]:
    """Let ``stlpips_pytorch`` import without IPython and torchsummary.

    It imports ``IPython.embed`` and ``torchsummary.summary`` at top level but does not
    declare them, and never calls them outside debugging helpers. Where one is missing,
    a stand-in module (whose function raises if ever called) is visible only for the
    duration of the import.
    """
    stubs: dict[str, types.ModuleType] = {}
    for name, attr in _UNDECLARED_IMPORTS:
        if name in sys.modules or importlib.util.find_spec(name) is not None:
            continue
        stub = types.ModuleType(name, f"stand-in for {name}, which is not installed")
        setattr(stub, attr, _not_available(f"{name}.{attr}"))
        stubs[name] = stub
    sys.modules.update(stubs)
    try:
        yield
    finally:
        for name, stub in stubs.items():
            if sys.modules.get(name) is stub:
                del sys.modules[name]


def _import_stlpips() -> types.ModuleType:
    if not st_lpips_available():
        raise ModuleNotFoundError(
            f"ST-LPIPS needs the optional package {_STLPIPS_PIN}: pip install "
            f"'{_STLPIPS_PIN}' (or the extra: pip install 'disrupt-deepfakes[perceptual]')",
            name=_STLPIPS,
        )
    with _undeclared_imports_stubbed(), contextlib.redirect_stdout(io.StringIO()):
        from stlpips_pytorch import stlpips  # type: ignore[import-not-found,import-untyped]
    return stlpips


def _check_weights_cover(model: nn.Module, state: dict[str, Tensor], path: Path) -> None:
    """Fail unless the weight file sets every parameter and buffer of ``model``.

    The package loads with ``strict=False`` because its state dict names each linear
    head twice (``lin0`` and ``lins.0`` are one module); so check by hand, on the
    de-duplicated names, that nothing is left at its random initialisation, that the
    file holds nothing the model lacks, and that the shapes agree.
    """
    own = model.state_dict()
    names = [n for n, _ in chain(model.named_parameters(), model.named_buffers())]
    missing = [n for n in names if n not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in state
        if k in own and state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        raise RuntimeError(
            f"ST-LPIPS weights {path} do not match the network: missing {missing}, "
            f"unexpected {unexpected}, shape mismatches {mismatched}"
        )


@functools.cache
def _st_lpips_model(net: str, device: torch.device) -> nn.Module:
    """The ST-LPIPS network ``net`` with its bundled weights, frozen, on ``device``."""
    stlpips = _import_stlpips()
    # Only variant="shift_tolerant" builds its trunk from scratch; the default variant
    # asks torchvision for ImageNet weights over the network. pretrained=False: the
    # weights are loaded and checked below instead of by the package (strict=False).
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Setting up [LPIPS]..."
        model = stlpips.LPIPS(net=net, variant="shift_tolerant", pretrained=False, verbose=False)
    path = Path(str(stlpips.__file__)).parent / "weights" / "vST0.0" / f"{net}_shift_tolerant.pth"
    if not path.is_file():
        raise FileNotFoundError(f"ST-LPIPS weights not found at {path} (expected {_STLPIPS_PIN})")
    state = torch.load(path, map_location="cpu", weights_only=True)
    _check_weights_cover(model, state, path)
    model.load_state_dict(state, strict=False)  # every tensor covered, checked above
    return model.to(device).eval().requires_grad_(False)


def st_lpips(a: Tensor, b: Tensor, net: str = "alex") -> Tensor:
    """ST-LPIPS, the shift-tolerant learned perceptual distance (Ghildyal & Liu 2022).

    Uses the weights bundled in the optional package ``stlpips-pytorch==0.0.2``
    (variant ``shift_tolerant``; nothing is downloaded), loaded once per network and
    device and checked to cover every parameter. A one-pixel shift scores far lower
    than noise of the same MSE, unlike LPIPS. Not comparable with LPIPS numbers: report
    it as "ST-LPIPS". Differentiable in ``a`` and ``b``; the network is frozen.

    Args:
        a, b: ``(B,3,H,W)`` sRGB in ``[0,1]`` (rescaled to ``[-1,1]`` here), at least
            :data:`ST_LPIPS_MIN_SIZE` ``[net]`` pixels high and wide.
        net: ``"alex"`` (10 MB, fast) or ``"vgg"`` (59 MB, a few seconds to build).

    Returns:
        ``(B,)`` float32, non-negative, 0 for identical images; larger is more different.

    Raises:
        ModuleNotFoundError: ``stlpips-pytorch`` is not installed.
    """
    _check_pair(a, b)
    if a.shape[1] != 3:
        raise ValueError(f"expected RGB images (B,3,H,W), got {tuple(a.shape)}")
    if net not in ST_LPIPS_NETS:
        raise ValueError(f"net must be one of {ST_LPIPS_NETS}, got {net!r}")
    smallest = ST_LPIPS_MIN_SIZE[net]
    if min(a.shape[-2:]) < smallest:
        raise ValueError(
            f"ST-LPIPS ({net}) needs images at least {smallest}x{smallest}, got "
            f"{a.shape[-2]}x{a.shape[-1]}"
        )
    model = _st_lpips_model(net, a.device)
    d = model(a.float() * 2 - 1, b.float() * 2 - 1)
    return d.flatten()
