"""The classic deepfake face-swap autoencoder: one shared encoder, one decoder per identity.

Architecture after the "Original" model of the deepfakes/faceswap project
(https://github.com/deepfakes/faceswap, ``plugins/train/model/original.py``; GPL-3.0),
itself the 2017 reddit "deepfakes" autoencoder: strided 5x5 convolutions with
LeakyReLU(0.1) shrink a 64x64 face, two dense layers form the bottleneck, an
"upscale" block (conv + pixel shuffle) brings it back to a small feature map, and
each identity's decoder upscales that to a 64x64 face with a sigmoid output. A swap
is encoding a face of person A and decoding it with person B's decoder.

This implementation is written from that description and is smaller (a few
hundred thousand to ~2M parameters instead of ~80M); no code from that project is
used. Bundled weights (``faceswap.lfw64``) are trained by
``targets/training/faceswap_train.py`` on LFW (non-commercial research use).

Value range: input and output are in ``[0, 1]`` (the original model also works on
``[0, 1]`` images and ends in a sigmoid).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


def _conv(cin: int, cout: int, kernel: int = 5) -> nn.Sequential:
    """Strided downsampling conv + LeakyReLU(0.1), as in the original encoder."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=2, padding=kernel // 2), nn.LeakyReLU(0.1)
    )


def _upscale(cin: int, cout: int) -> nn.Sequential:
    """3x3 conv to ``4*cout`` channels, LeakyReLU(0.1), pixel shuffle x2."""
    return nn.Sequential(
        nn.Conv2d(cin, cout * 4, 3, padding=1), nn.LeakyReLU(0.1), nn.PixelShuffle(2)
    )


class FaceSwapEncoder(nn.Module):
    """``(B,3,64,64)`` in ``[0,1]`` -> ``(B, 4*width, 8, 8)`` shared code."""

    def __init__(self, width: int, bottleneck: int) -> None:
        super().__init__()
        w = width
        self.convs = nn.Sequential(
            _conv(3, w), _conv(w, 2 * w), _conv(2 * w, 4 * w), _conv(4 * w, 8 * w, kernel=3)
        )  # 64 -> 32 -> 16 -> 8 -> 4
        self.code_shape = (4 * w, 4, 4)
        self.dense = nn.Sequential(
            nn.Flatten(),
            nn.Linear(8 * w * 16, bottleneck),
            nn.Linear(bottleneck, 4 * w * 16),
        )
        self.up = _upscale(4 * w, 4 * w)  # 4 -> 8

    def forward(self, x: Tensor) -> Tensor:
        h = self.dense(self.convs(x))
        return self.up(h.view(h.shape[0], *self.code_shape))


class FaceSwapDecoder(nn.Module):
    """``(B, 4*width, 8, 8)`` -> ``(B,3,64,64)`` in ``[0,1]``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            _upscale(4 * w, 2 * w),  # 16
            _upscale(2 * w, w),  # 32
            _upscale(w, w // 2),  # 64
            nn.Conv2d(w // 2, 3, 5, padding=2),
            nn.Sigmoid(),
        )

    def forward(self, h: Tensor) -> Tensor:
        out: Tensor = self.net(h)
        return out


class FaceSwapAutoencoder(nn.Module):
    """Shared encoder, one decoder per identity; 64x64 faces in ``[0, 1]``.

    Args:
        identities: the people the model can render, in condition order.
        width: base channel count (encoder widths ``w, 2w, 4w, 8w``).
        bottleneck: size of the dense code.

    ``forward(x, c)``: ``x`` ``(B,3,64,64)`` in ``[0,1]``; ``c`` ``(B, n)`` (or ``(n,)``)
    with a one-hot row per sample choosing whose decoder renders it. The output is
    ``sum_k c[:, k] * decoder_k(encode(x))``: one-hot rows route each sample through
    exactly its decoder (decoders no sample asks for are skipped), and the result is
    differentiable in ``x`` (and in ``c``).
    Returns ``(B,3,64,64)`` in ``[0,1]``.
    """

    def __init__(self, identities: Sequence[str], width: int = 32, bottleneck: int = 128) -> None:
        super().__init__()
        if len(identities) < 1:
            raise ValueError("need at least one identity")
        if width < 2 or width % 2:
            raise ValueError(f"width must be an even number >= 2, got {width}")
        self.identities = tuple(identities)
        self.width = width
        self.bottleneck = bottleneck
        self.encoder = FaceSwapEncoder(width, bottleneck)
        self.decoders = nn.ModuleList(FaceSwapDecoder(width) for _ in self.identities)

    def encode(self, x: Tensor) -> Tensor:
        """``(B,3,64,64)`` in ``[0,1]`` -> shared code ``(B, 4*width, 8, 8)``."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, 64, 64):
            raise ValueError(f"expected (B,3,64,64) faces, got {tuple(x.shape)}")
        out: Tensor = self.encoder(x)
        return out

    def decode(self, h: Tensor, identity: int | str) -> Tensor:
        """Render the code ``h`` as ``identity`` (index or name); ``(B,3,64,64)`` in ``[0,1]``."""
        k = self.identities.index(identity) if isinstance(identity, str) else identity
        out: Tensor = self.decoders[k](h)
        return out

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        h = self.encode(x)
        if c.ndim == 1:
            c = c.expand(x.shape[0], -1)
        if tuple(c.shape) != (x.shape[0], len(self.identities)):
            raise ValueError(
                f"condition must be (B, {len(self.identities)}) one-hot rows, got {tuple(c.shape)}"
            )
        c = c.to(h.dtype)
        out: Tensor | None = None
        for k, dec in enumerate(self.decoders):
            w = c[:, k]
            if out is not None and not bool((w != 0).any()):
                continue  # no sample asks for this identity: its term is exactly zero
            term = w[:, None, None, None] * dec(h)
            out = term if out is None else out + term
        assert out is not None
        return out

    def config(self) -> dict[str, object]:
        """Constructor arguments, for model cards and rebuilding."""
        return {"identities": list(self.identities), "width": self.width,
                "bottleneck": self.bottleneck}
