"""Listing text preprocessing, defined once for training and serving (the text "preset").

Two stages, both deterministic:

1. **Cleaning** (:func:`clean_text`): Unicode NFKC normalisation (full-width letters, ligatures and
   compatibility forms fold to their plain form: "ｉＰｈｏｎｅ" -> "iPhone", "ﬁ" -> "fi"), HTML
   unescaping ("&amp;" -> "&", "&eacute;" -> "é") and tag stripping ("<b>new</b>" -> " new "),
   lower-casing (``str.casefold``: "Straße" -> "strasse"), whitespace collapsed. Accents are
   kept: "é" and "e" are different letters, and the character n-grams below still share "caf"
   between "café" and "cafe".
2. **Tokenisation** (:func:`tokenize`): a token is a maximal run of Unicode letters and digits
   (regex ``[^\\W_]+``): punctuation, symbols and emoji separate tokens and are dropped, so
   "£1,234.50" -> "1", "234", "50" and "32GB" -> "32gb". At most :data:`MAX_TOKENS` tokens of a
   listing are used (the title first), which caps the work a very long description costs.
3. **Hashed features** (:class:`TextFeaturizer`), after fastText: every word, every word bigram,
   every title word (a second time, so the model can weigh the title apart) and the character
   n-grams (3 to 5 characters) of every word wrapped in ``<`` ``>`` are hashed (CRC-32, the same on
   every machine and process, unlike Python's ``hash``) into ``buckets`` ids. A listing becomes a
   list of ids; a batch becomes the ``(ids, offsets)`` pair ``nn.EmbeddingBag`` reads.

Training reads the export's title/description from the cleaned dataset and calls
:meth:`TextFeaturizer.encode`; the TorchServe handler calls the very same method on the request's
fields with the featuriser rebuilt from ``model_args.json``; ``tests/aicore/test_text.py`` proves both give
the same tensor for the same listing.

What a served request may hold (the caps on title and description) is the request contract's:
:mod:`common.codec`.
"""

import html
import re
import unicodedata
import zlib
from collections.abc import Sequence
from typing import NamedTuple

import torch

# Tokens of one listing the model reads (title first): a 20,000-character description is ~3,500
# tokens; the first 400 hold what a buyer reads and keep a listing's featurisation under ~2 ms.
MAX_TOKENS = 400
# Defaults of the hashed features (stored in model_args.json, so a trained model keeps its own).
DEFAULT_BUCKETS = 2**18  # 262,144 rows of the embedding table
DEFAULT_CHAR_NGRAMS = (3, 5)  # fastText's minn/maxn

_TAG = re.compile(r"<[^>]{0,500}>")  # a tag; bounded so a stray "<" cannot scan the whole text
_SPACE = re.compile(r"\s+")
_TOKEN = re.compile(r"[^\W_]+")
_CACHE_LIMIT = 200_000  # words whose n-gram ids are remembered per featuriser (~40 MB at most)


def clean_text(text: str) -> str:
    """Normalise one field: NFKC, HTML unescape, tags stripped, case-folded, whitespace collapsed.

    Unescaping runs before and after tag stripping so that an escaped tag ("&lt;br&gt;") is
    stripped too and an entity inside a tag's neighbour ("&amp;") still becomes "&".
    """
    text = unicodedata.normalize("NFKC", text)
    text = _TAG.sub(" ", html.unescape(text))
    text = html.unescape(_TAG.sub(" ", text))
    return _SPACE.sub(" ", text.casefold()).strip()


def tokenize(text: str) -> list[str]:
    """Tokens of a *cleaned* text: maximal runs of letters and digits (see the module docstring)."""
    return _TOKEN.findall(text)


def listing_tokens(title: str, description: str, max_tokens: int = MAX_TOKENS
                   ) -> tuple[list[str], int]:
    """Clean and tokenise a listing; returns (tokens, number of them that came from the title)."""
    title_tokens = tokenize(clean_text(title))[:max_tokens]
    body = tokenize(clean_text(description))[:max_tokens - len(title_tokens)]
    return title_tokens + body, len(title_tokens)


class TextBatch(NamedTuple):
    """A batch of listings as ``nn.EmbeddingBag`` reads it."""

    ids: torch.Tensor  # (N,) int64: every listing's feature ids, one after the other
    offsets: torch.Tensor  # (B,) int64: where each listing starts in ``ids``

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "TextBatch":
        return TextBatch(self.ids.to(device, non_blocking=non_blocking),
                         self.offsets.to(device, non_blocking=non_blocking))


class TextFeaturizer:
    """Listing text -> hashed feature ids (see the module docstring).

    Args:
        buckets: size of the id space (rows of the embedding table).
        char_ngrams: ``(min, max)`` character n-gram lengths; ``(0, 0)`` turns them off.
        word_ngrams: 1 for words only, 2 for words and bigrams.
        max_tokens: tokens of a listing that are used (title first).
    """

    def __init__(self, buckets: int = DEFAULT_BUCKETS,
                 char_ngrams: Sequence[int] = DEFAULT_CHAR_NGRAMS, word_ngrams: int = 2,
                 max_tokens: int = MAX_TOKENS) -> None:
        if buckets < 1 or word_ngrams not in (1, 2) or max_tokens < 1:
            raise ValueError(f"bad text features: buckets={buckets}, word_ngrams={word_ngrams}, "
                             f"max_tokens={max_tokens}")
        self.buckets = int(buckets)
        self.char_ngrams = (int(char_ngrams[0]), int(char_ngrams[1]))
        self.word_ngrams = int(word_ngrams)
        self.max_tokens = int(max_tokens)
        self._word_cache: dict[str, list[int]] = {}

    def config(self) -> dict:
        """The constructor arguments, as saved in ``model_args.json``."""
        return {"buckets": self.buckets, "char_ngrams": list(self.char_ngrams),
                "word_ngrams": self.word_ngrams, "max_tokens": self.max_tokens}

    def _hash(self, kind: str, text: str) -> int:
        return zlib.crc32(f"{kind}\x1f{text}".encode()) % self.buckets

    def _word_ids(self, word: str) -> list[int]:
        """The word's own id and its character n-gram ids (cached: words repeat a lot)."""
        ids = self._word_cache.get(word)
        if ids is None:
            ids = [self._hash("w", word)]
            lo, hi = self.char_ngrams
            if lo > 0:
                wrapped = f"<{word}>"
                for n in range(lo, hi + 1):
                    ids += [self._hash("c", wrapped[i:i + n]) for i in range(len(wrapped) - n + 1)]
            if len(self._word_cache) >= _CACHE_LIMIT:
                self._word_cache.clear()
            self._word_cache[word] = ids
        return ids

    def encode(self, title: str, description: str) -> list[int]:
        """One listing -> its feature ids (empty for a listing without a single token)."""
        tokens, n_title = listing_tokens(title, description, self.max_tokens)
        ids: list[int] = []
        for token in tokens:
            ids += self._word_ids(token)
        ids += [self._hash("t", token) for token in tokens[:n_title]]
        if self.word_ngrams == 2:
            ids += [self._hash("b", f"{a} {b}") for a, b in zip(tokens, tokens[1:], strict=False)]
        return ids


def collate_ids(listings: Sequence[Sequence[int]]) -> TextBatch:
    """Feature-id lists of B listings -> one :class:`TextBatch` (an empty listing is an empty bag)."""
    lengths = torch.tensor([len(ids) for ids in listings], dtype=torch.int64)  # (B,)
    offsets = torch.zeros_like(lengths)
    if len(listings) > 1:
        offsets[1:] = torch.cumsum(lengths[:-1], dim=0)
    flat = [i for ids in listings for i in ids]
    return TextBatch(torch.tensor(flat, dtype=torch.int64), offsets)
