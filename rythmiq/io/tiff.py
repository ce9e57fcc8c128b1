"""The multi-page TIFF reader: every IFD is a page, read from the one Pillow image.

By the time a TIFF gets here its IFD chain has been walked once and every IFD checked like
the first (:func:`rythmiq.io.preflight.tiff_ifds`) and its first page decoded
(:func:`rythmiq.io.raster.read_first`). :func:`read_tiff` then checks the page count, and
every page's size from its IFD (Pillow parses the IFD only) against ``max_pixels`` and the
sum against ``max_total_pixels``, before any other page is decoded; the pages are then
decoded one at a time from the same Pillow image.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from rythmiq._errors import InputError
from rythmiq.io.limits import Limits, too_many_pages, too_many_pixels
from rythmiq.io.pages import LoadedDocument, LoadedPage
from rythmiq.io.raster import FirstPage, decoding, metadata, to_uint8
from rythmiq.normalize import apply_exif_orientation

__all__ = ["read_tiff"]


def read_tiff(first: FirstPage, label: str, limits: Limits) -> LoadedDocument:
    """A multi-page TIFF as a document whose first page, ``first``, is decoded already.

    Raises:
        InputError: ``input.too_large`` (``max_pages``, a page over ``max_pixels``, or
            ``max_total_pixels``) or ``input.unreadable`` (a later page's IFD is corrupt).
    """
    image, data, im = first.image, first.image.encoded, first.pillow
    if image.frames > limits.max_pages:
        raise too_many_pages(label, image.frames, limits.max_pages, counted=True)
    sizes = [first.size]
    for i in range(1, image.frames):
        name = f"{label} page {i + 1}"
        with decoding(name, data):
            im.seek(i)  # parses the IFD only
            w, h = im.size
            if w < 1 or h < 1:
                raise InputError(f"{name} has no pixels ({w}x{h})")
            if w * h > limits.max_pixels:
                raise InputError(
                    f"{name} is {w}x{h} = {w * h} pixels, over the limit of {limits.max_pixels}",
                    code="input.too_large",
                )
            sizes.append((w, h))
    total = sum(w * h for w, h in sizes)
    if total > limits.max_total_pixels:
        raise too_many_pixels(label, total, limits.max_total_pixels)
    # One Pillow image serves every call of pages(): one page at a time seeks and decodes.
    lock = threading.Lock()

    def pages() -> Iterator[LoadedPage]:
        yield LoadedPage(0, image.pixels, image.declared_dpi, image.orientation)
        for i in range(1, len(sizes)):
            name = f"{label} page {i + 1}"
            with lock, decoding(name, data):
                im.seek(i)
                if im.size != sizes[i]:
                    raise InputError(f"{name} changed size while decoding")
                im.load()
                orientation, dpi = metadata(im, label)
                pixels = to_uint8(im, name)
            yield LoadedPage(i, apply_exif_orientation(pixels, orientation), dpi, orientation)

    return LoadedDocument(
        "TIFF", image.mode, len(sizes), total, image.byte_size, image.sha256, data, pages
    )
