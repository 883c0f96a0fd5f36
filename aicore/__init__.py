"""The small, stable core shared by training and serving.

Everything that must be identical on both sides lives here and is written once:

- :mod:`aicore.categories` — root-category parsing and the ``index_to_name.json`` label file;
- :mod:`aicore.presets` — image decoding/cleaning and the train/eval tensor presets;
- :mod:`aicore.models` — the model architectures and how a trained model is loaded.

Training imports these modules; ``make archive`` copies this package into every ``.mar`` so the
TorchServe handler imports the very same code.
"""
