"""The small shared layer every package may import: nothing heavy, nothing of ours below it.

- :mod:`common.cli` — the user-facing error type and the ``python -m`` entry-point runner;
- :mod:`common.atomic` — atomic file writes (temporary file, fsync, rename);
- :mod:`common.properties` — TorchServe's ``config.properties`` and its ``model_snapshot``;
- :mod:`common.torchserve` — the rest of the TorchServe contract: key file, worker status,
  environment variable names, default addresses, the proxy's ASGI app;
- :mod:`common.dataset_format` — the cleaned dataset's files and columns, read and written here
  only, and the one list of image file suffixes the project accepts;
- :mod:`common.net` — free loopback ports.

``aicore`` (the code packed into every archive) imports none of this; ``training``, ``handler``,
``serving``, ``proxy``, ``search`` and ``bench`` do, and never each other's internals.
"""
