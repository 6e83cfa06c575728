"""Images a young person sends from the web chat: checked, then re-encoded without their metadata.

Only JPEG, PNG and WebP are taken (what every browser shows; a screenshot is one of them). The file is decoded by
Pillow off the event loop (:func:`clean` is blocking: call it in a thread), never trusted by its name or its
declared type: the format is what Pillow reads in the bytes. A picture larger than ``max_pixels`` is refused
before its pixels are decoded (a small file can claim a huge canvas: a decompression bomb). The re-encoding keeps
the pixels (turned upright as the camera's orientation tag said) and nothing else: no EXIF (a phone's photo
carries where it was taken), no XMP, no comments, no ICC profile. HEIC (iPhone photos) is refused with its own
reason: no maintained decoder is shipped with Pillow, and Safari sends JPEG when the page asks for images.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

from PIL import Image, ImageOps, UnidentifiedImageError

FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif")


class ImageRefused(Exception):
    """Why an image is not taken: ``code`` is ``type``, ``heic``, ``too_large`` or ``corrupt`` (never the data)."""

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(f"image refused: {code}")


@dataclass(frozen=True, slots=True)
class CleanImage:
    content_type: str
    data: bytes = field(repr=False)
    width: int
    height: int


def clean(data: bytes, max_pixels: int) -> CleanImage:
    """The image in ``data`` re-encoded without metadata, or :class:`ImageRefused`."""
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        raise ImageRefused("heic")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=list(FORMATS)) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageRefused("too_large")
                image.load()
                return _reencode(image, FORMATS[str(image.format)])
        except UnidentifiedImageError:
            raise ImageRefused("type") from None
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise ImageRefused("too_large") from None
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, MemoryError):
            raise ImageRefused("corrupt") from None


def _reencode(image: Image.Image, content_type: str) -> CleanImage:
    upright = ImageOps.exif_transpose(image)  # the orientation tag goes with the rest of the EXIF
    out = io.BytesIO()
    if content_type == "image/jpeg":
        upright.convert("RGB").save(out, format="JPEG", quality=88)
    elif content_type == "image/png":
        keep = upright if upright.mode in ("1", "L", "LA", "P", "RGB", "RGBA") else upright.convert("RGBA")
        keep.save(out, format="PNG", optimize=False)
    else:
        keep = upright if upright.mode in ("RGB", "RGBA") else upright.convert("RGBA")
        keep.save(out, format="WEBP", quality=88)
    return CleanImage(content_type, out.getvalue(), upright.width, upright.height)
