"""Listing search and recommendation: FAISS vectors + SQLite/FTS5 records, fused and personalised.

- ``python -m search.build``: index a cleaned dataset with a trained run's embeddings;
- ``python -m search.query``: search from the shell;
- ``python -m search.evaluate``: precision@10, MAP@R, nDCG@10 and latency of each retriever.

The public API (used by the proxy): :class:`SearchEngine`, :class:`EngineHolder`,
:class:`SearchRequest`, :class:`Hit`, :class:`SearchResult` and the errors of
:mod:`search.errors`. Heavy imports (faiss, torch) happen inside the modules that need them.
"""

from search.engine import Hit, SearchEngine, SearchRequest, SearchResult
from search.holder import EngineHolder
from search.errors import BadRequest, IndexUnavailable, NotFound, SearchError

__all__ = ["BadRequest", "EngineHolder", "Hit", "IndexUnavailable", "NotFound", "SearchEngine",
           "SearchError", "SearchRequest", "SearchResult"]
