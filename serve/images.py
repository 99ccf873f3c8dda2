"""A PNG or PGM of one digit to the 784 pixels the model reads, converted the way MNIST was made.

A 28x28 image is used as is (converted to 8-bit grey if it is not already): it is taken to be an
MNIST-style image, ink bright on black. Any other size is converted as MNIST's images were made
from NIST's (yann.lecun.com/exdb/mnist: "size normalized to fit in a 20x20 pixel box while
preserving their aspect ratio ... centered in a 28x28 image by computing the center of mass of
the pixels"), after making it look like NIST's scans, ink bright on black:

1. grey: colour by ITU-R 601 luma (Pillow's ``convert("L")``), transparency as white paper,
   16-bit values scaled to 8 bits;
2. polarity: the median of the border pixels is the background; a light one (above 127.5) means
   dark ink on light paper, and the image is inverted;
3. contrast: the background becomes 0 and the brightest ink 255; an image with no ink (every
   pixel at the background level) is refused;
4. crop to the box of the pixels at least a quarter of the brightest (faint specks do not widen
   it), scale so that its longer side is 20 pixels, aspect ratio kept (Pillow's Lanczos filter,
   which anti-aliases when it shrinks);
5. place it in a black 28x28 field so that its intensity-weighted centre of mass falls on the
   field's centre (13.5, 13.5 in pixel indices, to the nearest pixel), kept inside the field.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from serve.errors import RequestError
from trainer.data.sources import IMAGE_SHAPE

SIDE = IMAGE_SHAPE[0]  # MNIST's images are square

if TYPE_CHECKING:  # Pillow is imported when the first image arrives
    from PIL.Image import Image

BOX = 20  # MNIST's normalisation box
MAX_SIDE = 4096  # larger images are refused before they are decoded
# At most this many pixels, from the header, before decoding: a 37 KB 4096x4096 16-bit PNG (it
# compresses to almost nothing) held a worker 2.9 s and took 450 MB in a hostile-input probe; a 2048x2048
# one still took 1.35 s on the busy 2-core machine. 1024x1024, one megapixel, is far more than
# a digit needs; docs/serving.md has the time of the largest allowed.
MAX_PIXELS = 1 << 20
INK_FRACTION = 0.25  # pixels this bright (of the brightest) bound the digit
FORMATS = {"png": ("PNG", "PNG"), "pgm": ("PPM", "PGM")}  # Pillow reads PGM as "PPM"


def decode_image(body: bytes, kind: str) -> np.ndarray:
    """A PNG or PGM body to ``(1, 784)`` uint8 pixels (see the module docstring)."""
    grey = read_grey(body, kind)
    pixels = grey if grey.shape == (SIDE, SIDE) else mnist_like(grey)
    return pixels.reshape(1, SIDE * SIDE)


def read_grey(body: bytes, kind: str) -> np.ndarray:
    """The image as 8-bit grey, ``(height, width)`` uint8; a bad or huge image is a 400."""
    from PIL import Image, UnidentifiedImageError

    pillow_format, name = FORMATS[kind]
    try:
        with Image.open(io.BytesIO(body), formats=[pillow_format]) as image:
            check_size(*image.size)
            image.load()
            return _to_grey(image)
    except RequestError:
        raise
    except UnidentifiedImageError:
        raise RequestError(400, f"the body starts like a {name} but is not one") from None
    except (Image.DecompressionBombError, OSError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RequestError(400, f"the body is not a readable {name} image ({detail})") from None


def check_size(width: int, height: int) -> None:
    """Refuse, from the header's size alone, an image too large to decode for a digit."""
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise RequestError(
            413,
            f"the image is {width}x{height} pixels; at most {MAX_PIXELS:,} pixels (1024x1024) "
            f"and {MAX_SIDE} on a side: scale it down, a digit needs no more than 28x28",
        )


def _to_grey(image: Image) -> np.ndarray:
    from PIL import Image as PillowImage

    if image.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit PNG or PGM: values 0-65535
        # Integer arithmetic, rounded: 4 bytes a pixel instead of float64's 8.
        wide = np.clip(np.asarray(image), 0, 65535).astype(np.uint32)
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)
    if "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = PillowImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = PillowImage.alpha_composite(paper, rgba)
    return np.asarray(image.convert("L"), dtype=np.uint8)


def mnist_like(grey: np.ndarray) -> np.ndarray:
    """Any-size 8-bit grey digit to a 28x28 MNIST-style image (steps 2-5 of the docstring)."""
    from PIL import Image

    ink = grey.astype(np.float64)
    border = np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]])
    background = float(np.median(border))
    if background > 127.5:
        ink, background = 255.0 - ink, 255.0 - background
    ink = np.clip(ink - background, 0.0, None)
    peak = float(ink.max())
    if peak == 0.0:
        raise RequestError(400, "the image is blank: no pixel differs from its background")
    ink *= 255.0 / peak
    strong = ink >= INK_FRACTION * 255.0
    rows, cols = np.flatnonzero(strong.any(axis=1)), np.flatnonzero(strong.any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = BOX / max(crop.shape)
    height = max(1, int(np.floor(crop.shape[0] * scale + 0.5)))
    width = max(1, int(np.floor(crop.shape[1] * scale + 0.5)))
    resized = Image.fromarray(crop.astype(np.float32), mode="F").resize(
        (width, height), Image.Resampling.LANCZOS
    )
    glyph = np.clip(np.asarray(resized, dtype=np.float64), 0.0, 255.0)
    return np.rint(centre_by_mass(glyph)).astype(np.uint8)


def centre_by_mass(glyph: np.ndarray) -> np.ndarray:
    """``glyph`` (at most 28x28) in a zero 28x28 field, its centre of mass on the field's centre."""
    total = glyph.sum()
    ys, xs = np.indices(glyph.shape)
    centre = (SIDE - 1) / 2
    if total > 0:
        cy, cx = float((ys * glyph).sum() / total), float((xs * glyph).sum() / total)
    else:  # Lanczos rounded a one-pixel speck away: centre the box instead
        cy, cx = (glyph.shape[0] - 1) / 2, (glyph.shape[1] - 1) / 2
    top = int(np.clip(np.floor(centre - cy + 0.5), 0, SIDE - glyph.shape[0]))
    left = int(np.clip(np.floor(centre - cx + 0.5), 0, SIDE - glyph.shape[1]))
    field = np.zeros((SIDE, SIDE), dtype=np.float64)
    field[top : top + glyph.shape[0], left : left + glyph.shape[1]] = glyph
    return field
