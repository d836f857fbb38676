"""Image records: read each record's image (a path, relative to the source or absolute, or its bytes),
check it decodes, and keep what the later steps need, so none of them reads the source files again:

- ``image_hash``: a hash of the image file's bytes (what decides re-embedding, with the model);
- ``image``: the copy the model embeds, its shortest side at most ``model_px`` (CLIP-family models see
  224 x 224), as JPEG;
- ``thumbnail``: the map's hover and point picture, its longest side at most ``thumbnail_px``, as JPEG.

Decoding and resizing run on a thread pool (Pillow releases the GIL while it decodes and resizes). A
missing file, an unreadable one, or one over ``max_pixels`` is named per record with its reason.
"""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

__all__ = ["ImageSettings", "LoadedImages", "load_images", "decode_image", "image_root_of", "contact_sheet"]


@dataclass(frozen=True)
class ImageSettings:
    """How image records are read and what is kept of them."""

    bad: Literal["skip", "fail"] = "skip"
    """A record whose image is missing or unreadable: left out (named in a warning), or fail the partition."""
    root: str | None = None
    """The folder relative image paths are read from (a file source's own folder by default, else the
    working directory)."""
    model_px: int = 256
    """The kept copy the model embeds: its shortest side at most this many pixels."""
    thumbnail_px: int = 64
    """The map's thumbnail: its longest side at most this many pixels."""
    thumbnail_quality: int = 70
    """JPEG quality of the thumbnail (a 64 px one is 1-3 KB)."""
    max_pixels: int = 64_000_000
    """An image of more pixels is refused (a decompression bomb, or a scan nobody meant to embed)."""
    workers: int | None = None
    """Threads that decode and resize; default the machine's cores."""

    def __post_init__(self) -> None:
        for name in ("model_px", "thumbnail_px", "max_pixels"):
            if getattr(self, name) < 8:
                raise ValueError(f"ImageSettings: {name} must be at least 8, not {getattr(self, name)}")
        if self.bad not in ("skip", "fail"):
            raise ValueError(f"ImageSettings: bad must be 'skip' or 'fail', not {self.bad!r}")
        if not 1 <= self.thumbnail_quality <= 95:
            raise ValueError(f"ImageSettings: thumbnail_quality must be within [1, 95], not {self.thumbnail_quality}")


@dataclass
class LoadedImages:
    """Per record, in input order (None where the record has no image, or a bad one)."""

    hashes: list[str | None]
    images: list[bytes | None]
    thumbnails: list[bytes | None]
    bad: list[tuple[str, str]] = field(default_factory=list)
    """``(record id, why)`` of each image that could not be read."""


def image_root_of(source_path: str) -> Path:
    """The folder relative image paths of a file source are read from: the source's own folder (of a
    glob, the part before its first wildcard)."""
    parts = Path(os.path.expanduser(source_path)).parts
    kept = []
    for part in parts:
        if any(ch in part for ch in "*?["):
            break
        kept.append(part)
    base = Path(*kept) if kept else Path(".")
    return base if len(kept) < len(parts) else base.parent


def _jpeg(img, quality: int) -> bytes:
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()


def _rgb(img):
    """The image in RGB, a transparent one on white, turned upright by its EXIF orientation."""
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "P", "PA"):
        img = img.convert("RGBA")
        back = Image.new("RGB", img.size, (255, 255, 255))
        back.paste(img, mask=img.getchannel("A"))
        return back
    return img.convert("RGB")


def _one(value, root: Path | None, settings: ImageSettings) -> tuple[str, bytes, bytes] | str | None:
    """(hash, model copy, thumbnail) of one image, None for no image, or why it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        data, named = bytes(value), "its bytes"
    else:
        path = Path(os.path.expanduser(str(value)))
        if not path.is_absolute() and root is not None:
            path = root / path
        named = str(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return f"no file at {path}"
        except OSError as exc:
            return f"{path} cannot be read ({exc.strerror or exc})"
    digest = hashlib.sha256(data).hexdigest()[:24]
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.width * probe.height > settings.max_pixels:
                return f"{named} is {probe.width} x {probe.height}, over max_pixels ({settings.max_pixels:,})"
            probe.verify()
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (settings.model_px * 2, settings.model_px * 2))  # JPEG: decode at a smaller scale
            rgb = _rgb(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"{named} is not an image Pillow can read ({type(exc).__name__}: {str(exc)[:120]})"
    model = rgb.copy()
    short = min(model.size)
    if short > settings.model_px:
        scale = settings.model_px / short
        model = model.resize((max(1, round(model.width * scale)), max(1, round(model.height * scale))),
                             Image.Resampling.BICUBIC)
    thumb = rgb.copy()
    thumb.thumbnail((settings.thumbnail_px, settings.thumbnail_px), Image.Resampling.LANCZOS)
    return digest, _jpeg(model, 92), _jpeg(thumb, settings.thumbnail_quality)


def load_images(values: Sequence, ids: Sequence[str], root: str | os.PathLike | None = None,
                settings: ImageSettings = ImageSettings()) -> LoadedImages:
    """Read, check and resize the images ``values`` (paths relative to ``root`` or absolute, or bytes;
    None or "" for a record without one) of the records ``ids``."""
    base = Path(root) if root is not None else None
    workers = settings.workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(lambda v: _one(v, base, settings), values))
    out = LoadedImages(hashes=[], images=[], thumbnails=[])
    for rid, got in zip(ids, done):
        if isinstance(got, tuple):
            out.hashes.append(got[0])
            out.images.append(got[1])
            out.thumbnails.append(got[2])
            continue
        out.hashes.append(None)
        out.images.append(None)
        out.thumbnails.append(None)
        if isinstance(got, str):
            out.bad.append((str(rid), got))
    return out


def decode_image(data: bytes):
    """A kept image copy (:func:`load_images`' ``image``) as an RGB PIL image, for the model."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


def contact_sheet(thumbnails: Sequence[bytes], columns: int = 8, cell: int = 64) -> bytes | None:
    """A grid of ``thumbnails`` (JPEG bytes), ``columns`` wide, each centred in a ``cell`` px square, as
    one JPEG: a sample of a partition's images for the Dagster UI. None without any thumbnail."""
    from PIL import Image

    thumbs = [t for t in thumbnails if t]
    if not thumbs:
        return None
    rows = (len(thumbs) + columns - 1) // columns
    sheet = Image.new("RGB", (min(len(thumbs), columns) * (cell + 4) + 4, rows * (cell + 4) + 4), (255, 255, 255))
    for i, data in enumerate(thumbs):
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("RGB")
            img.thumbnail((cell, cell))
            x = 4 + (i % columns) * (cell + 4) + (cell - img.width) // 2
            y = 4 + (i // columns) * (cell + 4) + (cell - img.height) // 2
            sheet.paste(img, (x, y))
    return _jpeg(sheet, 80)
