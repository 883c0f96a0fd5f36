"""Buyers: anonymous sessions, their event log, the "for you" feed and learning from clicks.

- :mod:`buyers.store`: sessions and their events (views, impressions, clicks) in SQLite (WAL),
  bounded per session and swept after the retention period;
- :mod:`buyers.events`: the events a page may report (``POST /events``), validated;
- :mod:`buyers.feed`: ``GET /feed``: listings near the session's views, diversified by MMR;
- :mod:`buyers.clicks`: ``python -m buyers.clicks``: the log as training data, CTR and MRR;
- :mod:`buyers.simulate`: buyers with interests and a position-biased click model, for tests
  and benchmarks.

The proxy serves them (proxy/buyer_routes.py); docs/buyers.md says what is stored and for how long.
"""
