"""Seller tokens: random, shown once, stored only as a SHA-256 digest, compared in constant time.

A token is 32 random bytes (``secrets.token_urlsafe``): guessing one is hopeless, so an unsalted
fast hash is enough to make a stolen database useless for writing (no password-style stretching
is needed for a high-entropy secret).
"""

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same(stored: str, presented: str) -> bool:
    """Digests compared in constant time (no early exit on the first differing character)."""
    return hmac.compare_digest(stored.encode(), presented.encode())
