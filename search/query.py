"""Search an index from the shell.

    python -m search.query --index indexes/demo --text "kettle" -k 5 --max-price 100 --near Leeds
    python -m search.query --index indexes/demo --image photo.jpg --category Appliances
    python -m search.query --index indexes/demo --text sofa --image photo.jpg --viewed ID1,ID2

A photo is embedded in-process with the index's run (the same code TorchServe runs); text is
matched by BM25 (and embedded too when the index's model reads text, or by the index's text
encoder when it holds text vectors). ``--json`` prints the hits
as JSON lines instead of a table.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from common.cli import UserError, positive_int, run
from search.embedders import IMAGE, TEXT
from search.encoder import index_embedder, text_encoder_embedder
from search.engine import SearchEngine, SearchRequest, SearchResult
from search.limits import MAX_K, RETRIEVERS
from search.errors import SearchError


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m search.query",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True, metavar="INDEX_DIR",
                        help="an index built by python -m search.build")
    parser.add_argument("--text", metavar="WORDS", help="the query text")
    parser.add_argument("--image", type=Path, metavar="FILE", help="a query photo")
    parser.add_argument("-k", type=positive_int, default=10, help=f"results, 1..{MAX_K} (default: 10)")
    parser.add_argument("--retriever", choices=RETRIEVERS, default="fused",
                        help="fused, or one retriever alone (default: fused)")
    parser.add_argument("--min-price", type=float, metavar="GBP", help="lowest price")
    parser.add_argument("--max-price", type=float, metavar="GBP", help="highest price")
    parser.add_argument("--category", help="a root category, e.g. Appliances")
    parser.add_argument("--near", metavar="PLACE", help="a town or region, e.g. Leeds or London")
    parser.add_argument("--viewed", default="", metavar="IDS",
                        help="listing ids the user viewed, most recent first, comma-separated")
    parser.add_argument("--json", action="store_true", help="print one JSON object per hit")
    return parser


def main(args: argparse.Namespace) -> SearchResult:
    if not args.text and args.image is None:
        raise UserError("give --text, --image or both")
    engine = SearchEngine.open(args.index)
    vector = None
    wants_vector = (args.image is not None and IMAGE in engine.modalities) or \
        (args.text and TEXT in engine.modalities)
    if wants_vector:
        embedder = index_embedder(engine.meta)
        image = _read(args.image) if args.image is not None else None
        vector = embedder.embed_query(text=args.text if TEXT in engine.modalities else None,
                                      image=image if IMAGE in engine.modalities else None)
    elif args.image is not None:
        raise UserError(f"the index's model ({engine.meta['arch']}) does not embed photos")
    text_embedder = text_encoder_embedder(engine.meta) if args.text else None
    text_vector = text_embedder.embed_query(text=args.text) if text_embedder else None
    viewed = [v.strip() for v in args.viewed.split(",") if v.strip()]
    request = SearchRequest(text=args.text, vector=vector, text_vector=text_vector, k=args.k,
                            retriever=args.retriever,
                            min_price=args.min_price, max_price=args.max_price,
                            category=args.category, near=args.near, viewed=viewed)
    try:
        result = engine.search(request)
    except SearchError as exc:
        raise UserError(str(exc)) from None
    _print(result, args.json)
    return result


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read --image {path}: {exc.strerror}") from None


def _print(result: SearchResult, as_json: bool) -> None:
    if as_json:
        for hit in result.hits:
            print(json.dumps(asdict(hit), ensure_ascii=False))
        return
    print(f"{len(result.hits)} result(s), {result.retriever}"
          f"{', personalised' if result.personalised else ''}, {result.took_ms:.1f} ms")
    for rank, hit in enumerate(result.hits, start=1):
        price = "no price" if hit.price is None else f"£{hit.price:,.2f}"
        print(f"{rank:3d}. {hit.score:8.4f}  {hit.title[:60]:60s}  {price:>12s}  "
              f"{hit.location[:24]:24s}  {hit.category}  [{'+'.join(hit.matched)}]  {hit.id}")


if __name__ == "__main__":
    run(main, get_args_parser())
