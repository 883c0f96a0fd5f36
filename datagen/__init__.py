"""Data generation: the synthetic demo export and the real-data dev sets.

Nothing here trains; each module writes a raw export (or a cleaned set through
``training.prepare``) that the trainer's room then reads.
"""
