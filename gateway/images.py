"""Images a young person sends from the web chat: checked, then re-encoded without their metadata.

Only JPEG, PNG and WebP are taken (what every browser shows; a screenshot is one of them). The file is decoded by
Pillow off the event loop (:func:`clean` is blocking: call it in a thread), never trusted by its name or its
declared type: the format is what Pillow reads in the bytes. A picture larger than ``max_pixels`` is refused
before its pixels are decoded (a small file can claim a huge canvas: a decompression bomb). The re-encoding keeps
the pixels (turned upright as the camera's orientation tag said) and nothing else: no EXIF (a phone's photo
carries where it was taken), no XMP, no comments, no ICC profile. HEIC (iPhone photos) is refused with its own
reason: no maintained decoder is shipped with Pillow, and Safari sends JPEG when the page asks for images.

What is kept is bounded: the picture scaled down to ``max_edge`` pixels on its long side (a listener reads a phone's
screenshot at 2048), a JPEG decoded at a reduced scale when it is far larger (``draft``: less CPU), and re-encoded as
JPEG at a lower quality when its own format would still weigh more than ``max_kept`` bytes (a noisy PNG). Until
2026-12-07 the full 40 megapixels were kept, at JPEG quality 88: 3.7 MB of noise sent came out 10.6 MB in the store
(``bench/uploads.py``), one troll's network could fill Redis in minutes.

Images are cleaned in a pool of their own (:class:`Cleaning`: ``GATEWAY_WEBCHAT_IMAGE_WORKERS`` threads, at most
``GATEWAY_WEBCHAT_IMAGE_WAITING`` more waiting, beyond them :class:`~gateway.errors.ImagesBusy`). Until 2026-12-07
they were cleaned in the loop's default executor (``asyncio.to_thread``), which aiohttp's DNS lookups and redis-py's
connects to a host name share: an image flood made those wait behind it.
"""

from __future__ import annotations

import asyncio
import io
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from PIL import Image, UnidentifiedImageError

from gateway.errors import ImagesBusy

T = TypeVar("T")

FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
# What Pillow names a JPEG it read: a JPEG carrying more pictures (its Multi-Picture Format segment: a phone's HDR
# gain map, a depth map, a second view) is opened as "MPO"; its first picture is the photo (kept as any JPEG, the
# others dropped). Since 2026-12-07: until then ``FORMATS["MPO"]`` raised KeyError, the upload answered 503 at every
# try of such a photo.
READ_AS = {**FORMATS, "MPO": "image/jpeg"}
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


MAX_EDGE = 2048  # pixels on the long side kept (GATEWAY_WEBCHAT_IMAGE_MAX_EDGE)
MAX_KEPT = 2_000_000  # bytes kept at most for one image (GATEWAY_WEBCHAT_IMAGE_MAX_KEPT_BYTES)
QUALITIES = (88, 75, 60, 45, 30)  # JPEG qualities tried in turn until the image fits in ``max_kept``


def clean(data: bytes, max_pixels: int, max_edge: int = MAX_EDGE, max_kept: int = MAX_KEPT) -> CleanImage:
    """The image in ``data`` re-encoded without metadata, at most ``max_edge`` pixels on its long side and
    ``max_kept`` bytes (:func:`_reencode`), or :class:`ImageRefused`."""
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        raise ImageRefused("heic")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=list(FORMATS)) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageRefused("too_large")
                content_type = READ_AS.get(str(image.format))
                if content_type is None:  # a plugin's subclass not named above: never a 5xx
                    raise ImageRefused("type")
                if content_type == "image/jpeg":  # decoded at 1/2, 1/4 or 1/8 when still at least max_edge
                    image.draft(image.mode, (max_edge, max_edge))
                image.load()
                return _reencode(image, content_type, max_edge, max_kept)
        except UnidentifiedImageError:
            raise ImageRefused("type") from None
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise ImageRefused("too_large") from None
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, MemoryError):
            raise ImageRefused("corrupt") from None


ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}  # the EXIF orientation tag's values (as ``ImageOps.exif_transpose`` reads them)


def _upright(image: Image.Image) -> Image.Image:
    """The picture turned as its EXIF orientation tag says; as it is when the EXIF cannot be read (the pixels are
    kept, the EXIF goes anyway). Since 2026-12-07: until then ``ImageOps.exif_transpose``, which also rewrites the
    EXIF it was given (dropped by the re-encoding): a tag of an unexpected type in it (``BitsPerSample`` as text)
    raised ``struct.error``, answered 503 with an ERROR line, again at every try of the same photo."""
    try:
        orientation = image.getexif().get(0x0112)
    except Exception:  # hostile metadata: any failure to read it leaves the picture as it is
        return image
    method = ORIENTATIONS.get(orientation) if isinstance(orientation, int) else None
    return image if method is None else image.transpose(method)


def _reencode(image: Image.Image, content_type: str, max_edge: int, max_kept: int) -> CleanImage:
    upright = _upright(image)  # the orientation tag goes with the rest of the EXIF
    if max(upright.size) > max_edge:
        upright = upright.copy() if upright is image else upright
        upright.thumbnail((max_edge, max_edge), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if content_type == "image/jpeg":
        upright.convert("RGB").save(out, format="JPEG", quality=QUALITIES[0])
    elif content_type == "image/png":
        keep = upright if upright.mode in ("1", "L", "LA", "P", "RGB", "RGBA") else upright.convert("RGBA")
        keep.save(out, format="PNG", optimize=False)
    else:
        keep = upright if upright.mode in ("RGB", "RGBA") else upright.convert("RGBA")
        keep.save(out, format="WEBP", quality=QUALITIES[0])
    if out.tell() <= max_kept:
        return CleanImage(content_type, out.getvalue(), upright.width, upright.height)
    flat = _flattened(upright)
    for quality in QUALITIES[1:] if content_type == "image/jpeg" else QUALITIES:
        out = io.BytesIO()
        flat.save(out, format="JPEG", quality=quality)
        if out.tell() <= max_kept:
            break
    return CleanImage("image/jpeg", out.getvalue(), flat.width, flat.height)  # the lowest quality's, at worst


class Cleaning:
    """The images' own threads (made by the app factory, shut down at its cleanup): ``workers`` at once, ``waiting``
    more queued; past them :class:`ImagesBusy` at once (nothing waits unbounded). A job counts until its thread is
    done with it, even when the request that asked for it is gone (a cancelled wait does not stop a started
    decoding: the count stays true to the threads' work)."""

    def __init__(self, workers: int = 2, waiting: int = 8) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gateway-images")
        self._bound = workers + waiting
        self._jobs = 0
        self._lock = threading.Lock()

    async def clean(
        self, data: bytes, max_pixels: int, max_edge: int = MAX_EDGE, max_kept: int = MAX_KEPT
    ) -> CleanImage:
        """:func:`clean` in the pool; :class:`ImagesBusy` when it is full."""
        return await self.run(clean, data, max_pixels, max_edge, max_kept)

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """``work(*args)`` in the pool, counted in its bound; :class:`ImagesBusy` when it is full."""
        with self._lock:
            if self._jobs >= self._bound:
                raise ImagesBusy("the images' pool is full")
            self._jobs += 1
        try:
            future: Future[T] = self._executor.submit(work, *args)
        except BaseException:
            self._done()
            raise
        future.add_done_callback(lambda _: self._done())
        return await asyncio.wrap_future(future)

    def _done(self) -> None:
        with self._lock:
            self._jobs -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _flattened(image: Image.Image) -> Image.Image:
    """RGB for a JPEG, transparency on white (a screenshot's background)."""
    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")
