"""Tests for disrupt.imaging: every mode in, one convention out, atomic safe writes."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import ExifTags, Image, ImageCms, ImageFile

from disrupt.errors import DisruptError, ImageError
from disrupt.imaging import (
    LoadedImage,
    default_output_path,
    load_image,
    quantize,
    reload_saved,
    save_image,
    to_uint8,
)

W, H = 8, 6
RNG = np.random.default_rng(0)
RGB8 = RNG.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
ALPHA8 = RNG.integers(0, 256, size=(H, W), dtype=np.uint8)
GRAY16 = RNG.integers(0, 65536, size=(H, W), dtype=np.uint16)
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# ------------------------------------------------------------------ file builders


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png_raw(width: int, height: int, depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit RGB, or lie about sizes)."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


def _png16_rgb(arr: np.ndarray) -> bytes:
    rows = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(arr.shape[0]))
    return _png_raw(arr.shape[1], arr.shape[0], 16, 2, rows)


def _write(path: Path, im: Image.Image, **params: object) -> Path:
    im.save(path, **params)  # type: ignore[arg-type]
    return path


def _p_with_transparency() -> Image.Image:
    im = Image.fromarray(RGB8).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    im.info["transparency"] = 0
    return im


def _make(tmp_path: Path, kind: str) -> Path:
    p = tmp_path
    if kind == "RGB":
        return _write(p / "rgb.png", Image.fromarray(RGB8))
    if kind == "RGBA":
        return _write(p / "rgba.png", Image.fromarray(np.dstack([RGB8, ALPHA8])))
    if kind == "LA":
        return _write(p / "la.png", Image.fromarray(np.dstack([RGB8[..., 0], ALPHA8]), "LA"))
    if kind == "L":
        return _write(p / "l.png", Image.fromarray(RGB8[..., 0]))
    if kind == "1":
        return _write(p / "one.png", Image.fromarray(RGB8[..., 0] > 127))
    if kind == "P":
        return _write(p / "p.png", Image.fromarray(RGB8).convert("P"))
    if kind == "P+transparency":
        return _write(p / "pt.png", _p_with_transparency(), transparency=0)
    if kind == "CMYK":
        cmyk = Image.fromarray(np.dstack([RGB8, ALPHA8]), "CMYK")
        return _write(p / "cmyk.jpg", cmyk, quality=95, icc_profile=SRGB_ICC)
    if kind == "I;16":
        return _write(p / "gray16.png", Image.fromarray(GRAY16))
    if kind == "RGB16":
        path = p / "rgb16.png"
        path.write_bytes(_png16_rgb(RGB8.astype(np.uint16) * 257 + 3))
        return path
    if kind == "F":
        return _write(p / "float.tif", Image.fromarray(RGB8[..., 0].astype(np.float32) / 255))
    raise AssertionError(kind)


# kind -> (PIL mode reported, has alpha, bit depth)
MODES = {
    "RGB": ("RGB", False, 8),
    "RGBA": ("RGBA", True, 8),
    "LA": ("LA", True, 8),
    "L": ("L", False, 8),
    "1": ("1", False, 8),
    "P": ("P", False, 8),
    "P+transparency": ("P", True, 8),
    "CMYK": ("CMYK", False, 8),
    "I;16": ("I;16", False, 16),
    "RGB16": ("RGB", False, 16),
    "F": ("F", False, 16),
}


# ------------------------------------------------------------------ loading modes


@pytest.mark.parametrize("kind", list(MODES))
def test_every_mode_loads_to_the_convention(tmp_path: Path, kind: str) -> None:
    path = _make(tmp_path, kind)
    img = load_image(path)
    mode, has_alpha, depth = MODES[kind]
    assert img.rgb.shape == (1, 3, H, W) and img.rgb.dtype == torch.float32
    assert float(img.rgb.min()) >= 0.0 and float(img.rgb.max()) <= 1.0
    assert img.size == (W, H)
    assert img.mode == mode
    assert (img.alpha is not None) == has_alpha
    if img.alpha is not None:
        assert img.alpha.shape == (H, W) and img.alpha.dtype == np.uint8
    assert img.bit_depth == depth
    assert img.path == path and img.format is not None


@pytest.mark.parametrize("kind", list(MODES))
def test_every_mode_round_trips(tmp_path: Path, kind: str) -> None:
    img = load_image(_make(tmp_path, kind))
    out = save_image(img.rgb, tmp_path / "out.png", like=img)
    back = load_image(out)
    assert back.size == img.size
    assert back.bit_depth == 8 and back.mode == ("RGBA" if img.alpha is not None else "RGB")
    assert torch.equal(back.rgb, quantize(img.rgb))
    if img.alpha is not None:
        assert back.alpha is not None and back.alpha.tobytes() == img.alpha.tobytes()
    assert back.icc_profile == img.icc_profile


def test_rgb_values_are_exact(tmp_path: Path) -> None:
    img = load_image(_make(tmp_path, "RGB"))
    assert np.array_equal(to_uint8(img.rgb), RGB8)


def test_rgba_alpha_is_kept_exactly(tmp_path: Path) -> None:
    img = load_image(_make(tmp_path, "RGBA"))
    assert img.alpha is not None and np.array_equal(img.alpha, ALPHA8)
    assert np.array_equal(to_uint8(img.rgb), RGB8)


def test_grayscale_loads_as_three_equal_channels(tmp_path: Path) -> None:
    for kind in ("L", "LA", "1", "I;16", "F"):
        rgb = load_image(_make(tmp_path, kind)).rgb[0]
        assert torch.equal(rgb[0], rgb[1]) and torch.equal(rgb[1], rgb[2]), kind
    l_img = load_image(_make(tmp_path, "L"))
    assert np.array_equal(to_uint8(l_img.rgb)[..., 0], RGB8[..., 0])


def test_sixteen_bit_grayscale_keeps_full_precision(tmp_path: Path) -> None:
    img = load_image(_make(tmp_path, "I;16"))
    expected = torch.from_numpy(GRAY16.astype(np.float32) / 65535)
    assert torch.allclose(img.rgb[0, 0], expected, atol=1e-7)


def test_sixteen_bit_rgb_png_is_read_to_within_one_level(tmp_path: Path) -> None:
    img = load_image(_make(tmp_path, "RGB16"))
    assert img.bit_depth == 16
    diff = np.abs(to_uint8(img.rgb).astype(int) - RGB8.astype(int))
    assert diff.max() <= 1


def test_palette_transparency_becomes_alpha(tmp_path: Path) -> None:
    im = _p_with_transparency()
    expected = np.where(np.asarray(im) == 0, 0, 255)
    img = load_image(_make(tmp_path, "P+transparency"))
    assert img.alpha is not None and np.array_equal(img.alpha, expected)
    assert np.array_equal(to_uint8(img.rgb), np.asarray(im.convert("RGB")))


def test_cmyk_converts_to_rgb_and_keeps_an_rgb_profile(tmp_path: Path) -> None:
    img = load_image(_make(tmp_path, "CMYK"))
    assert img.mode == "CMYK" and img.icc_profile == SRGB_ICC
    out = save_image(img.rgb, tmp_path / "out.jpg", like=img)
    with Image.open(out) as saved:
        assert saved.info.get("icc_profile") == SRGB_ICC


def test_non_rgb_profile_is_dropped(tmp_path: Path) -> None:
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    path = _write(tmp_path / "l.png", Image.fromarray(RGB8[..., 0]), icc_profile=lab)
    assert load_image(path).icc_profile is None


def test_first_frame_of_an_animation(tmp_path: Path) -> None:
    frames = [Image.fromarray(RGB8), Image.fromarray(255 - RGB8)]
    path = tmp_path / "anim.png"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert np.array_equal(to_uint8(load_image(path).rgb), RGB8)


# ------------------------------------------------------------------ other sources


def test_bytes_stream_and_pil_sources(tmp_path: Path) -> None:
    path = _make(tmp_path, "RGBA")
    from_path = load_image(str(path))
    from_bytes = load_image(path.read_bytes())
    with path.open("rb") as f:
        from_stream = load_image(f)
        assert not f.closed  # the caller's stream is the caller's to close
    with Image.open(path) as pil:
        from_pil = load_image(pil)
        assert pil.mode == "RGBA" and pil.size == (W, H)  # the caller's image is not converted
    for img in (from_bytes, from_stream, from_pil):
        assert torch.equal(img.rgb, from_path.rgb)
        assert img.alpha is not None and np.array_equal(img.alpha, ALPHA8)
    assert from_bytes.path is None and from_pil.path == path
    assert from_stream.format == "PNG"


@pytest.mark.parametrize(
    ("array", "mode", "alpha_dtype", "depth"),
    [
        (RGB8[..., 0], "L", None, 8),
        (RGB8, "RGB", None, 8),
        (np.dstack([RGB8, ALPHA8]), "RGBA", np.uint8, 8),
        (GRAY16, "I;16", None, 16),
        (np.dstack([GRAY16] * 3 + [GRAY16]), "RGBA", np.uint16, 16),
        (RGB8.astype(np.float64) / 255, "RGB", None, 16),
        (RGB8[..., 0] > 100, "1", None, 8),
    ],
)
def test_numpy_sources(array: np.ndarray, mode: str, alpha_dtype: type | None, depth: int) -> None:
    img = load_image(array)
    assert img.rgb.shape == (1, 3, H, W) and img.rgb.dtype == torch.float32
    assert float(img.rgb.min()) >= 0.0 and float(img.rgb.max()) <= 1.0
    assert img.mode == mode and img.bit_depth == depth and img.path is None
    if alpha_dtype is None:
        assert img.alpha is None
    else:
        assert img.alpha is not None and img.alpha.dtype == alpha_dtype
        assert np.array_equal(img.alpha, array[..., 3])


def test_numpy_uint8_values_and_uint16_alpha_save(tmp_path: Path) -> None:
    assert np.array_equal(to_uint8(load_image(RGB8).rgb), RGB8)
    alpha16 = (ALPHA8.astype(np.uint16) * 257)[..., None]
    img = load_image(np.concatenate([RGB8.astype(np.uint16) * 257, alpha16], axis=2))
    back = load_image(save_image(img.rgb, tmp_path / "a.png", like=img))
    assert back.alpha is not None and np.array_equal(back.alpha, ALPHA8)


def test_tensor_sources() -> None:
    x = torch.rand(3, H, W)
    a, b = load_image(x), load_image(x[None])
    assert a.rgb.shape == b.rgb.shape == (1, 3, H, W)
    assert torch.equal(a.rgb[0], x) and a.rgb.data_ptr() != x.data_ptr()


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((H, W, 5), np.uint8),
        np.zeros((0, W, 3), np.uint8),
        np.full((H, W, 3), 1.5, np.float32),
        np.full((H, W, 3), np.nan, np.float32),
        np.zeros((H, W, 3), np.int64),
        torch.rand(2, 3, H, W),
        torch.rand(1, H, W),
        torch.rand(3, H, W) * 2,
    ],
)
def test_bad_arrays_and_tensors_are_value_errors(bad: object) -> None:
    with pytest.raises(ValueError):
        load_image(bad)  # type: ignore[arg-type]


def test_unknown_source_type() -> None:
    with pytest.raises(TypeError):
        load_image(42)  # type: ignore[arg-type]


# ------------------------------------------------------------------ EXIF orientation


def _quadrants_jpeg(path: Path, orientation: int) -> None:
    """40 wide x 20 high as stored; the top-left quarter is red, the rest blue."""
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[..., 2] = 255
    arr[:10, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "TestCam"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2020:01:02 03:04:05"
    Image.fromarray(arr).save(path, quality=95, exif=exif.tobytes())


def test_exif_orientation_is_applied_and_reset(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    _quadrants_jpeg(path, 6)
    img = load_image(path)
    assert img.size == (20, 40)  # transposed
    # Orientation 6: rotate 90 degrees clockwise to display: stored top-left -> top-right.
    pixels = to_uint8(img.rgb)
    assert pixels[5, 15, 0] > 200 and pixels[5, 5, 2] > 200
    assert img.exif is not None
    exif = Image.Exif()
    exif.load(img.exif)
    assert exif[ExifTags.Base.Orientation] == 1 and exif[ExifTags.Base.Make] == "TestCam"
    taken = exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal]
    assert taken == "2020:01:02 03:04:05"  # sub-IFDs survive

    out = save_image(img.rgb, tmp_path / "out.png", like=img)
    with Image.open(out) as saved:
        assert saved.size == (20, 40)
        assert saved.getexif()[ExifTags.Base.Orientation] == 1
        assert saved.getexif()[ExifTags.Base.Make] == "TestCam"
    assert load_image(out).size == (20, 40)  # not rotated a second time


# ------------------------------------------------------------------ saving


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif", ".tiff"])
def test_lossless_formats_round_trip_with_alpha_icc_exif(tmp_path: Path, suffix: str) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestCam"
    src = _write(
        tmp_path / "in.png",
        Image.fromarray(np.dstack([RGB8, ALPHA8])),
        icc_profile=SRGB_ICC,
        exif=exif.tobytes(),
    )
    img = load_image(src)
    back = load_image(save_image(img.rgb, tmp_path / f"out{suffix}", like=img))
    assert back.size == (W, H)
    assert np.array_equal(to_uint8(back.rgb), RGB8)
    assert back.alpha is not None and back.alpha.tobytes() == ALPHA8.tobytes()
    assert back.icc_profile == SRGB_ICC
    assert back.exif is not None
    reread = Image.Exif()
    reread.load(back.exif)
    assert reread[ExifTags.Base.Make] == "TestCam"
    assert 273 not in reread  # no TIFF StripOffsets copied into the EXIF of a TIFF output


def test_jpeg_output_is_close_and_drops_alpha(tmp_path: Path) -> None:
    smooth = np.linspace(0, 1, H * W * 3, dtype=np.float32).reshape(H, W, 3)
    img = load_image(smooth)
    img.alpha = ALPHA8
    back = load_image(save_image(img.rgb, tmp_path / "out.jpeg", like=img))
    assert back.format == "JPEG" and back.alpha is None
    assert float((back.rgb - img.rgb).abs().max()) < 8 / 255


def test_save_accepts_three_dims_and_reload_matches_quantize(tmp_path: Path) -> None:
    x = torch.rand(3, H, W)
    out = save_image(x, tmp_path / "x.png")
    assert torch.equal(reload_saved(out), quantize(x)[None])


def test_save_leaves_no_temp_files_and_uses_normal_permissions(tmp_path: Path) -> None:
    out = save_image(torch.rand(1, 3, H, W), tmp_path / "x.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_write_keeps_the_existing_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "x.png"
    out.write_bytes(b"previous content")

    def broken_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        if hasattr(fp, "write"):
            fp.write(b"partial")  # type: ignore[union-attr]
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ImageError) as info:
        save_image(torch.rand(1, 3, H, W), out, overwrite=True)
    assert "x.png" in str(info.value) and "disk full" in str(info.value)
    assert out.read_bytes() == b"previous content"
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_interrupted_write_cleans_up_and_propagates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: Image.Image, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_image(torch.rand(1, 3, H, W), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_never_writes_over_the_input(tmp_path: Path) -> None:
    src = _make(tmp_path, "RGB")
    before = src.read_bytes()
    img = load_image(src)
    for target in (src, tmp_path / "." / src.name):
        with pytest.raises(ImageError, match="input"):
            save_image(img.rgb, target, like=img, overwrite=True)
    link = tmp_path / "hardlink.png"
    os.link(src, link)
    with pytest.raises(ImageError, match="input"):
        save_image(img.rgb, link, like=img, overwrite=True)
    assert src.read_bytes() == before


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "x.png"
    out.write_bytes(b"keep me")
    with pytest.raises(ImageError) as info:
        save_image(torch.rand(1, 3, H, W), out)
    assert str(info.value) == f"{out}: output exists; pass overwrite=True (CLI: --overwrite)"
    assert out.read_bytes() == b"keep me"
    out.chmod(0o640)
    save_image(torch.rand(1, 3, H, W), out, overwrite=True)
    assert load_image(out).size == (W, H)
    assert out.stat().st_mode & 0o777 == 0o640  # an overwritten file keeps its permissions


def test_unsupported_output_suffix(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="unsupported output format"):
        save_image(torch.rand(1, 3, H, W), tmp_path / "x.bmp")


def test_alpha_of_another_size_is_a_value_error(tmp_path: Path) -> None:
    like = LoadedImage(rgb=torch.rand(1, 3, H, W), alpha=np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="alpha"):
        save_image(like.rgb, tmp_path / "x.png", like=like)


def _assert_one_line(exc: ImageError, *needles: str) -> None:
    text = str(exc)
    assert "\n" not in text
    for needle in needles:
        assert needle in text, (needle, text)
    assert isinstance(exc, DisruptError)


def test_unwritable_or_missing_output_folder(tmp_path: Path) -> None:
    x = torch.rand(1, 3, H, W)
    missing = tmp_path / "missing"
    with pytest.raises(ImageError) as info:
        save_image(x, missing / "x.png")
    _assert_one_line(info.value, str(missing), "does not exist")

    regular = tmp_path / "file.txt"
    regular.write_text("not a folder")
    with pytest.raises(ImageError) as info:
        save_image(x, regular / "x.png")
    _assert_one_line(info.value, str(regular), "output folder")

    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(ImageError) as info:
                save_image(x, locked / "x.png")
            _assert_one_line(info.value, str(locked), "not writable")
        finally:
            locked.chmod(0o700)


# ------------------------------------------------------------------ bad inputs


def _huge_png_header(width: int, height: int) -> bytes:
    return _png_raw(width, height, 8, 2, b"\x00" * 4)


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    png = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(png, "PNG")
    jpeg = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    files = {
        "text.jpg": (b"this is not an image\n", "not an image"),
        "empty.png": (b"", "file is empty"),
        "half.png": (png.getvalue()[: len(png.getvalue()) // 2], "truncated image data"),
        "half.jpg": (jpeg.getvalue()[: len(jpeg.getvalue()) // 2], "truncated image data"),
        "huge.png": (_huge_png_header(20_000, 20_000), "400000000 pixels, over Pillow's limit"),
        "big.png": (_huge_png_header(10_000, 10_000), "over the limit of 89478485"),
        "zero.png": (_huge_png_header(0, 10), ""),
    }
    cases = {}
    for name, (data, problem) in files.items():
        (tmp_path / name).write_bytes(data)
        cases[name] = (tmp_path / name, problem)
    (tmp_path / "folder.png").mkdir()
    cases["folder.png"] = (tmp_path / "folder.png", "directory")
    cases["missing.png"] = (tmp_path / "missing.png", "file not found")
    return cases


@pytest.mark.parametrize(
    "name",
    [
        "text.jpg",
        "empty.png",
        "half.png",
        "half.jpg",
        "huge.png",
        "big.png",
        "zero.png",
        "folder.png",
        "missing.png",
    ],
)
def test_bad_files_raise_one_line_image_errors(tmp_path: Path, name: str) -> None:
    path, problem = _bad_inputs(tmp_path)[name]
    filters_before = list(warnings.filters)
    with pytest.raises(ImageError) as info:
        load_image(path)
    _assert_one_line(info.value, str(path), problem)
    assert str(info.value).startswith(f"{path}: ")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert warnings.filters == filters_before


def test_pixel_limit_is_checked_before_decoding(tmp_path: Path) -> None:
    path = _make(tmp_path, "RGB")
    with pytest.raises(ImageError) as info:
        load_image(path, max_pixels=W * H - 1)
    expected = f"{path}: image has {W * H} pixels, over the limit of {W * H - 1} "
    assert str(info.value) == expected + "(decompression bomb guard)"
    assert load_image(path, max_pixels=W * H).size == (W, H)
    with Image.open(path) as pil, pytest.raises(ImageError, match="over the limit"):
        load_image(pil, max_pixels=10)


def test_zero_size_pil_image() -> None:
    with pytest.raises(ImageError, match="^<PIL image>: image has zero size"):
        load_image(Image.new("RGB", (0, 5)))


def test_bad_bytes_and_streams_are_named() -> None:
    with pytest.raises(ImageError, match="^<bytes>: input is empty$"):
        load_image(b"")
    with pytest.raises(ImageError, match="^<bytes>: not an image"):
        load_image(b"hello")
    with pytest.raises(ImageError, match="^<stream>: not an image"):
        load_image(io.BytesIO(b"hello"))


# ------------------------------------------------------------------ 8-bit grid


def test_to_uint8_rounds_and_clamps() -> None:
    x = torch.tensor([0.0, 0.5 / 255 - 1e-4, 0.5 / 255 + 1e-4, 1.0, 1.2, -0.1])
    x = x.view(1, 1, 1, 6).expand(1, 3, 1, 6)
    out = to_uint8(x)
    assert out.shape == (1, 6, 3) and out.dtype == np.uint8
    assert out[0, :, 0].tolist() == [0, 0, 1, 255, 255, 0]
    assert np.array_equal(to_uint8(x[0]), out)
    with pytest.raises(ValueError):
        to_uint8(torch.rand(2, 3, 4, 4))


def test_quantize_is_the_8_bit_grid() -> None:
    x = torch.rand(2, 3, H, W)
    q = quantize(x)
    assert q.dtype == x.dtype and q.shape == x.shape
    assert torch.equal(quantize(q), q)
    assert float((q - x).abs().max()) <= 0.5 / 255 + 1e-7
    assert torch.allclose(q * 255, (q * 255).round(), atol=1e-4)
    assert np.array_equal(to_uint8(q[0]), to_uint8(x[0]))


# ------------------------------------------------------------------ output naming


def test_default_output_path(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    assert default_output_path(photo, None) == tmp_path / "photo.protected.png"
    folder = tmp_path / "out"
    folder.mkdir()
    assert default_output_path(photo, folder) == folder / "photo.protected.png"
    assert default_output_path(photo, "new/") == Path("new") / "photo.protected.png"
    assert default_output_path(photo, tmp_path / "x.webp") == tmp_path / "x.webp"
