"""Decoding image files, shared by the data sets read from JPEGs (Tiny ImageNet, ImageNet)."""

from __future__ import annotations

from pathlib import Path

from signscope.errors import SignscopeError


def open_rgb(path: str | Path):
    """The image at ``path`` decoded as 3-channel RGB (Tiny ImageNet and ImageNet hold a few
    greyscale and CMYK JPEGs); a file PIL cannot decode is one error naming it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Exception as exc:
        raise SignscopeError(f"{path}: not a readable image ({exc})") from None
