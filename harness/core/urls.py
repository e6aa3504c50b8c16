"""URLs in messages and logs (storage and tracking servers): never with their password."""

from __future__ import annotations

import re


def mask_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)
