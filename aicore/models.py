"""Model architectures and loading a trained model, shared by training, evaluation and serving.

A trained model travels as three files in one directory (a training run, or an unpacked ``.mar``):
``model.pt`` (a ``state_dict``, never a pickled module), ``model_args.json`` (the constructor
arguments of :func:`build_model`) and ``index_to_name.json`` (the labels).

Every architecture implements :class:`EncoderClassifier`: ``encode`` (the layer before the head,
the listing's embedding before normalisation) and ``head`` (that layer -> logits), so one pass
gives both (:mod:`aicore.runtime`). Adding an image architecture: a class implementing the
protocol and one row of :data:`IMAGE_ARCHITECTURES`.
"""

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from aicore import text_models
from aicore.categories import INDEX_TO_NAME_FILE, index_to_name, index_to_name_text, read_index_to_name
from aicore.presets import IMAGE_SIZE

MODEL_FILE = "model.pt"
MODEL_ARGS_FILE = "model_args.json"


@runtime_checkable
class EncoderClassifier(Protocol):
    """What every architecture is: an encoder to a ``(B, D)`` embedding and a head to logits.

    ``model(x) == model.head(model.encode(x))``; ``x`` is the model's own input (an image tensor
    ``(B, 3, S, S)``, an :class:`aicore.text.TextBatch` or an :class:`aicore.text_models.ListingBatch`).
    """

    embedding_dim: int  # D

    def encode(self, x) -> torch.Tensor: ...  # (B, D)

    def head(self, features: torch.Tensor) -> torch.Tensor: ...  # (B, D) -> (B, C) logits


class MarketplaceCNN(nn.Module):
    """The project's original small CNN, ending in logits (softmax belongs to evaluation/serving).

    The original ended in ReLU + Softmax and was trained with ``cross_entropy``, which applies a
    softmax again; that double softmax held it at 13-15 % accuracy.
    """

    embedding_dim = 64

    def __init__(self, num_classes: int, image_size: int = IMAGE_SIZE) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=5, stride=2, padding=1),  # (B, 8, 63, 63) at 128 px
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 16, kernel_size=5, stride=2),  # (B, 16, 30, 30)
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 32, kernel_size=5, stride=2),  # (B, 32, 13, 13)
            nn.ReLU(inplace=True),
            nn.Flatten(),  # (B, 5408) = 32 x 13 x 13 at 128 px
        )
        flat = 32 * _cnn_side(image_size) ** 2
        self.classifier = nn.Sequential(
            nn.Linear(flat, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, 64),
            nn.ReLU(inplace=True),
            nn.Linear(64, num_classes),  # logits
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, num_classes)
        return self.classifier(self.features(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, 64)
        """The activations before the head: the 64-d layer feeding the last Linear."""
        return self.classifier[:-1](self.features(x))

    def head(self, features: torch.Tensor) -> torch.Tensor:  # (B, 64) -> (B, num_classes)
        """The last Linear: :meth:`encode` followed by it is :meth:`forward`."""
        return self.classifier[-1](features)


def _cnn_side(image_size: int) -> int:
    """Spatial side after the three convolutions: floor((n + 2p - k) / s) + 1 each."""
    side = (image_size + 2 * 1 - 5) // 2 + 1
    side = (side - 5) // 2 + 1
    side = (side - 5) // 2 + 1
    if side < 1:
        raise ValueError(f"image_size {image_size} is too small for the CNN (minimum 29)")
    return side


class ResNet50Classifier(ResNet):
    """torchvision's ResNet-50 with ``fc`` replaced by a ``num_classes``-way linear layer.

    A subclass only to add the protocol's methods: its ``state_dict`` keys are torchvision's, so
    ImageNet weights and saved runs load unchanged.
    """

    embedding_dim = 2048

    def __init__(self, num_classes: int) -> None:
        # zero_init_residual: every residual branch starts as identity, which keeps a from-scratch
        # run stable at the default lr 0.08 (without it the demo run's loss reached 11.8 in epoch
        # 1). Initialisation only: pretrained weights and saved state_dicts load unchanged.
        super().__init__(Bottleneck, [3, 4, 6, 3], zero_init_residual=True)
        self.fc = nn.Linear(self.fc.in_features, num_classes)

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, 2048)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, S/4, S/4)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 2048, S/32, S/32)
        return torch.flatten(self.avgpool(x), 1)  # (B, 2048)

    def head(self, features: torch.Tensor) -> torch.Tensor:  # (B, 2048) -> (B, num_classes)
        return self.fc(features)


def build_resnet50(num_classes: int, image_size: int = IMAGE_SIZE) -> nn.Module:
    """ResNet-50 for ``num_classes``; global average pooling: any ``image_size`` works."""
    return ResNet50Classifier(num_classes)


# Image architecture -> its constructor ``(num_classes, image_size) -> model``. The multimodal
# model's image encoder is one of these too (``image_arch``).
IMAGE_ARCHITECTURES: dict[str, Callable[[int, int], nn.Module]] = {
    "cnn": MarketplaceCNN,
    "resnet50": build_resnet50,
}
# text and multimodal read listing text: aicore.text_models.
ARCHITECTURES = (*IMAGE_ARCHITECTURES, "text", "multimodal")


def encode(model: nn.Module, x: torch.Tensor | tuple) -> torch.Tensor:
    """The layer before a model's classification head, ``(B, ...) -> (B, D)`` (its ``encode``)."""
    return model.encode(x)


def embed(model: nn.Module, x: torch.Tensor | tuple) -> torch.Tensor:
    """A listing's embedding: :func:`encode` scaled to unit L2 norm, ``(B, D)``.

    Inner products of embeddings are cosine similarities, which is what listing search ranks by.
    """
    return F.normalize(encode(model, x), dim=1)


def build_model(arch: str, num_classes: int, image_size: int = IMAGE_SIZE,
                **options: object) -> nn.Module:
    """Build an untrained model; the keyword arguments are what ``model_args.json`` stores.

    ``options`` are the text settings of the text and multimodal models (``text``: the
    featuriser's, ``dim``/``text_dim``/``fusion_dim``, ``image_arch``; see
    :mod:`aicore.text_models`); the image models take none.

    Raises:
        ValueError: for an unknown ``arch`` or options it does not take.
    """
    if arch == "text":
        return text_models.TextClassifier(num_classes, **options)
    if arch == "multimodal":
        image_arch = str(options.pop("image_arch", "cnn"))
        if image_arch not in IMAGE_ARCHITECTURES:
            raise ValueError(f"unknown image_arch {image_arch!r}; choose one of "
                             f"{', '.join(IMAGE_ARCHITECTURES)}")
        image_model = IMAGE_ARCHITECTURES[image_arch](num_classes, image_size)
        return text_models.MultimodalClassifier(num_classes, image_arch, image_model, **options)
    if arch not in IMAGE_ARCHITECTURES:
        raise ValueError(f"unknown model {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    if options:
        raise ValueError(f"model {arch!r} takes no options, got {sorted(options)}")
    return IMAGE_ARCHITECTURES[arch](num_classes, image_size)


def model_args(arch: str, num_classes: int, image_size: int = IMAGE_SIZE, **options: object) -> dict:
    """The constructor arguments saved with every trained model (``options``: see build_model)."""
    return {"arch": arch, "num_classes": num_classes, "image_size": image_size, **options}


def save_trained(model_dir: Path, model: nn.Module, class_names: list[str], margs: dict,
                 write_bytes: Callable[[Path, bytes], object] = Path.write_bytes) -> None:
    """Write the three files :func:`load_trained` reads: labels, model arguments, then weights.

    Args:
        model_dir: an existing directory (a training run, a test's model folder).
        model: the model; its ``state_dict`` is saved from the CPU, never the pickled module.
        class_names: the labels in index order (alphabetical, see ``aicore.categories``).
        margs: the constructor arguments, as :func:`model_args` returns them.
        write_bytes: how a file is written; training passes an atomic writer so a run killed
            mid-write keeps the previous files.
    """
    model_dir = Path(model_dir)
    if margs.get("num_classes") != len(class_names):
        raise ValueError(f"model_args say {margs.get('num_classes')} classes but {len(class_names)} "
                         "class names were given")
    labels = index_to_name(class_names)
    if list(labels.values()) != list(class_names):
        raise ValueError(f"class names must be unique and sorted, got {class_names}")
    weights = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, weights)
    write_bytes(model_dir / INDEX_TO_NAME_FILE, index_to_name_text(labels).encode("utf-8"))
    write_bytes(model_dir / MODEL_ARGS_FILE, (json.dumps(margs, indent=2) + "\n").encode("utf-8"))
    write_bytes(model_dir / MODEL_FILE, weights.getvalue())  # last: the weights complete the set


def load_trained(model_dir: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, list[str], dict]:
    """Load a trained model from ``model_dir`` for inference (``eval()`` mode).

    Returns:
        ``(model, class_names, model_args)``.

    Raises:
        FileNotFoundError: if one of the three files is missing.
        ValueError: if the files do not fit together.
    """
    model_dir = Path(model_dir)
    for name in (MODEL_FILE, MODEL_ARGS_FILE, INDEX_TO_NAME_FILE):
        if not (model_dir / name).is_file():
            raise FileNotFoundError(f"{model_dir / name} is missing: {model_dir} is not a trained model "
                                    f"(expected {MODEL_FILE}, {MODEL_ARGS_FILE}, {INDEX_TO_NAME_FILE})")
    args = json.loads((model_dir / MODEL_ARGS_FILE).read_text())
    names = read_index_to_name(model_dir / INDEX_TO_NAME_FILE)
    if args.get("num_classes") != len(names):
        raise ValueError(f"{model_dir}: model_args.json says {args.get('num_classes')} classes but "
                         f"index_to_name.json names {len(names)}")
    try:
        model = build_model(**args)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{model_dir / MODEL_ARGS_FILE} does not describe a model: {exc}") from None
    state = torch.load(model_dir / MODEL_FILE, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{model_dir / MODEL_FILE} does not fit a {args['arch']} model: "
                         f"{str(exc).splitlines()[0]}") from None
    return model.to(device).eval(), names, args
