"""The text model (fastText-style) and the image + text (multimodal) model.

Both read a listing's text as the hashed feature ids of :class:`aicore.text.TextFeaturizer`; the
featuriser's settings are part of the model's constructor arguments (``model_args.json``
``"text"``), so training and serving hash identically. Each model takes one batch object
(:class:`aicore.text.TextBatch`, :class:`ListingBatch`) and has an ``encode`` method: the layer
before the head, which :func:`aicore.models.embed` scales to unit length.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from aicore.text import TextBatch, TextFeaturizer, collate_ids

DEFAULT_TEXT_DIM = 64
DEFAULT_FUSION_DIM = 128


class ListingBatch(NamedTuple):
    """A batch of listings, each with or without a photo and with or without text."""

    images: torch.Tensor  # (B, 3, S, S); any values where has_image is 0
    has_image: torch.Tensor  # (B,) float: 1 when the listing has a photo
    ids: torch.Tensor  # (N,) int64 text feature ids, as TextBatch
    offsets: torch.Tensor  # (B,) int64

    @property
    def text(self) -> TextBatch:
        return TextBatch(self.ids, self.offsets)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "ListingBatch":
        return ListingBatch(*(t.to(device, non_blocking=non_blocking) for t in self))


def model_input(arch: str, ids: list[list[int]], images: list[torch.Tensor | None],
                image_size: int) -> TextBatch | ListingBatch:
    """The input of a text or multimodal model for B listings, as serving and search build it.

    Args:
        arch: ``"text"`` (``images`` ignored) or ``"multimodal"``.
        ids: each listing's feature ids (:meth:`aicore.text.TextFeaturizer.encode`).
        images: each listing's preprocessed photo ``(3, S, S)``, or ``None`` (a zero image,
            flagged as missing).
        image_size: S.
    """
    text = collate_ids(ids)
    if arch == "text":
        return text
    blank = torch.zeros(3, image_size, image_size)
    stacked = torch.stack([blank if image is None else image for image in images])  # (B, 3, S, S)
    has_image = torch.tensor([float(image is not None) for image in images])  # (B,)
    return ListingBatch(stacked, has_image, text.ids, text.offsets)


def make_featurizer(text: dict | None) -> TextFeaturizer:
    """The featuriser saved in ``model_args.json`` (defaults when ``None``)."""
    return TextFeaturizer(**(text or {}))


class _GatherRows(torch.autograd.Function):
    """``weight[rows]`` for distinct sorted ``rows``, whose gradient is a coalesced sparse tensor
    of ``weight``'s shape (what ``EmbeddingBag(sparse=True)`` gives, without repeated rows)."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows)
        ctx.shape = weight.shape
        return weight.index_select(0, rows)  # (U, dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (rows,) = ctx.saved_tensors
        return torch.sparse_coo_tensor(rows.unsqueeze(0), grad, ctx.shape, is_coalesced=True,
                                       check_invariants=False), None


class TextEncoder(nn.Module):
    """Mean of the listing's feature embeddings (fastText's hidden layer), ``(B, dim)``.

    With ``idf=True`` the mean is weighted by each feature's inverse document frequency (the
    ``idf`` buffer, set once from the training split by :meth:`set_idf` and saved in the
    ``state_dict``): a word found in every listing ("used", "collection") counts less than one
    that names the item, as in TF-IDF. Measured on real text (docs/text.md): the
    plain mean trailed a TF-IDF + logistic regression reference by a point, the weighted mean
    matches it. A listing without tokens is an empty bag and encodes to zeros.
    """

    def __init__(self, buckets: int, dim: int, idf: bool = False) -> None:
        super().__init__()
        # Sparse gradients: a batch touches a few thousand of the table's rows, so SGD updates
        # those instead of all of them (a dense step over 2^18 x 64 floats is ~20x slower).
        self.bag = nn.EmbeddingBag(buckets, dim, mode="mean", sparse=True)
        nn.init.uniform_(self.bag.weight, -1.0 / dim, 1.0 / dim)  # fastText's initialisation
        self.dim = dim
        # All ones until set_idf: the weighted mean is then the plain mean.
        self.idf: torch.Tensor | None
        self.register_buffer("idf", torch.ones(buckets) if idf else None)

    @torch.no_grad()
    def set_idf(self, document_frequency: torch.Tensor, documents: int) -> None:
        """``idf = ln((1 + n) / (1 + df)) + 1`` per bucket (scikit-learn's smoothed idf).

        Args:
            document_frequency: ``(buckets,)`` how many training listings hold each feature id.
            documents: n, the number of training listings.
        """
        if self.idf is None:
            raise ValueError("this encoder was built with idf=False")
        self.idf.copy_(torch.log((1.0 + documents) / (1.0 + document_frequency.float())) + 1.0)

    def forward(self, batch: TextBatch) -> torch.Tensor:  # -> (B, dim)
        if self.training and torch.is_grad_enabled():
            # The batch's distinct rows are gathered first and the bags average those, so the
            # table's gradient comes out already summed per row (U rows, coalesced) instead of
            # one row per looked-up id (~40,000 per batch of 32, ~2x repeats), which the
            # optimiser would otherwise have to sort and sum every step. Same values as self.bag.
            rows, ids = torch.unique(batch.ids, return_inverse=True)  # (U,), (N,)
            table, sparse = _GatherRows.apply(self.bag.weight, rows), False  # (U, dim)
        elif self.idf is None:
            return self.bag(batch.ids, batch.offsets)  # serving's path
        else:
            ids, table, sparse = batch.ids, self.bag.weight, True
        if self.idf is None:
            return F.embedding_bag(ids, table, batch.offsets, mode="mean")
        weights = self.idf[batch.ids]  # (N,)
        summed = F.embedding_bag(ids, table, batch.offsets, mode="sum", sparse=sparse,
                                 per_sample_weights=weights)  # (B, dim)
        total = F.embedding_bag(torch.arange(weights.shape[0], device=weights.device),
                                weights.unsqueeze(1), batch.offsets,
                                mode="sum")  # (B, 1): each bag's weight; 0 for an empty bag
        return summed / total.clamp_min(1e-12)


class TextClassifier(nn.Module):
    """fastText: hashed n-gram embeddings averaged (idf-weighted with ``idf=True``), then one
    linear layer to the classes."""

    def __init__(self, num_classes: int, text: dict | None = None,
                 dim: int = DEFAULT_TEXT_DIM, idf: bool = False) -> None:
        super().__init__()
        self.featurizer = make_featurizer(text)
        self.encoder = TextEncoder(self.featurizer.buckets, dim, idf=idf)
        self.embedding_dim = dim
        self.head = nn.Linear(dim, num_classes)  # logits: (B, dim) -> (B, num_classes)

    def encode(self, batch: TextBatch) -> torch.Tensor:  # -> (B, dim)
        return self.encoder(batch)

    def forward(self, batch: TextBatch) -> torch.Tensor:  # -> (B, num_classes)
        return self.head(self.encode(batch))


class MultimodalClassifier(nn.Module):
    """Image encoder + text encoder, concatenated and fused into one classification head.

    The image encoder is a whole image model of :mod:`aicore.models` (its own head unused; its
``embedding_dim`` sizes the fusion layer), so the
    ``model.pt`` of a finished image run loads into ``self.image`` unchanged. A listing without a
    photo has its image encoding zeroed, one without text encodes to zeros on the text side; two
    indicator inputs (has photo, has text) tell the fusion layer which parts are missing.
    """

    def __init__(self, num_classes: int, image_arch: str, image_model: nn.Module,
                 text: dict | None = None, text_dim: int = DEFAULT_TEXT_DIM,
                 fusion_dim: int = DEFAULT_FUSION_DIM, idf: bool = False) -> None:
        super().__init__()
        self.image_arch = image_arch
        self.featurizer = make_featurizer(text)
        self.image = image_model
        self.text = TextEncoder(self.featurizer.buckets, text_dim, idf=idf)
        image_dim = image_model.embedding_dim  # the image architecture's encoding size
        # LayerNorm per modality: the CNN's ReLU features and the text mean live on very
        # different scales; normalised, neither drowns the other at the start of training.
        self.image_norm = nn.LayerNorm(image_dim)
        self.text_norm = nn.LayerNorm(text_dim)
        self.fuse = nn.Sequential(nn.Linear(image_dim + text_dim + 2, fusion_dim),
                                  nn.ReLU(inplace=True))
        self.embedding_dim = fusion_dim
        self.head = nn.Linear(fusion_dim, num_classes)  # logits: (B, fusion_dim) -> (B, C)

    def encode(self, batch: ListingBatch) -> torch.Tensor:  # -> (B, fusion_dim)
        has_image = batch.has_image.unsqueeze(1)  # (B, 1)
        image = self.image_norm(self.image.encode(batch.images)) * has_image  # (B, Di)
        has_text = (batch.offsets.diff(append=batch.offsets.new_tensor([batch.ids.numel()])) > 0
                    ).to(image.dtype).unsqueeze(1)  # (B, 1): the bag is not empty
        text = self.text_norm(self.text(batch.text)) * has_text  # (B, Dt)
        return self.fuse(torch.cat([image, text, has_image, has_text], dim=1))

    def forward(self, batch: ListingBatch) -> torch.Tensor:  # -> (B, num_classes)
        return self.head(self.encode(batch))
