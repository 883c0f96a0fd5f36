"""The marketplace's write path: sellers, their listings and photos, stored durably.

- :mod:`market.store`: ``state/market.db`` (SQLite WAL, ``synchronous=FULL``), the change feed;
- :mod:`market.photos`: photos cleaned (metadata stripped) and stored by content hash;
- :mod:`market.tokens`: seller tokens (only their hash is stored);
- :mod:`market.ratelimit`: token buckets for registration and writes;
- ``python -m market.demo``: register a seller, publish a listing, find it by search.

The proxy serves it (proxy/market_routes.py); docs/marketplace.md explains the whole path.
"""
