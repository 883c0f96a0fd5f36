"""Data generation: the synthetic demo export, the real-data dev sets and the relevance benchmark.

Nothing here trains; each module writes a raw export (or a cleaned set through
``training.prepare``) that the trainer's room then reads; ``relevanceset`` also writes judged
queries for ``search.evaluate``.
"""
