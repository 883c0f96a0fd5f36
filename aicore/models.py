"""Model architectures and loading a trained model, shared by training, evaluation and serving.

A trained model travels as three files in one directory (a training run, or an unpacked ``.mar``):
``model.pt`` (a ``state_dict``, never a pickled module), ``model_args.json`` (the constructor
arguments of :func:`build_model`) and ``index_to_name.json`` (the labels).
"""

import io
import json
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import ResNet
from torchvision.models import resnet50 as tv_resnet50

from aicore.categories import INDEX_TO_NAME_FILE, index_to_name, index_to_name_text, read_index_to_name
from aicore.efficientnet import EfficientNetLite0
from aicore.presets import IMAGE_SIZE

MODEL_FILE = "model.pt"
MODEL_ARGS_FILE = "model_args.json"
IMAGE_ARCHITECTURES = ("cnn", "resnet50", "efficientnet_lite0")
# text and multimodal read listing text: aicore.text_models.
ARCHITECTURES = (*IMAGE_ARCHITECTURES, "text", "multimodal")


class MarketplaceCNN(nn.Module):
    """The project's original small CNN, ending in logits (softmax belongs to evaluation/serving).

    The original ended in ReLU + Softmax and was trained with ``cross_entropy``, which applies a
    softmax again; that double softmax held it at 13-15 % accuracy.
    """

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

    def head(self) -> nn.Module:
        """The last Linear, 64 -> num_classes: :meth:`encode` followed by it is :meth:`forward`."""
        return self.classifier[-1]


def _cnn_side(image_size: int) -> int:
    """Spatial side after the three convolutions: floor((n + 2p - k) / s) + 1 each."""
    side = (image_size + 2 * 1 - 5) // 2 + 1
    side = (side - 5) // 2 + 1
    side = (side - 5) // 2 + 1
    if side < 1:
        raise ValueError(f"image_size {image_size} is too small for the CNN (minimum 29)")
    return side


def build_resnet50(num_classes: int) -> nn.Module:
    """torchvision's ResNet-50 with ``fc`` replaced by a ``num_classes``-way linear layer."""
    # zero_init_residual: every residual branch starts as identity, which keeps a from-scratch
    # run stable at the default lr 0.08 (without it the demo run's loss reached 11.8 in epoch 1).
    # Initialisation only: pretrained weights and saved state_dicts load unchanged.
    model = tv_resnet50(weights=None, zero_init_residual=True)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def encode(model: nn.Module, x: torch.Tensor | tuple) -> torch.Tensor:
    """The layer before a model's classification head, ``(B, ...) -> (B, D)``.

    ``x`` is the model's own input: an image tensor ``(B, 3, S, S)``, an
    :class:`aicore.text.TextBatch` (text) or an :class:`aicore.text_models.ListingBatch`
    (multimodal). Every architecture of :data:`ARCHITECTURES` answers: ours (EfficientNet-Lite0's
    wrapper included) through an ``encode`` method, torchvision's ResNet through its own layers up
    to the global average pool.
    """
    if isinstance(model, ResNet):
        x = model.maxpool(model.relu(model.bn1(model.conv1(x))))  # (B, 64, S/4, S/4)
        x = model.layer4(model.layer3(model.layer2(model.layer1(x))))  # (B, 2048, S/32, S/32)
        return torch.flatten(model.avgpool(x), 1)  # (B, 2048)
    return model.encode(x)


def head(model: nn.Module) -> nn.Module:
    """A model's classification head: ``model(x) == head(model)(encode(model, x))``.

    Lets a caller that needs both the embedding and the logits (the served runtimes) run the
    backbone once.
    """
    if isinstance(model, ResNet):
        return model.fc
    return model.head()


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
    if arch in ("text", "multimodal"):
        from aicore import text_models  # it builds its image encoder with this function

        if arch == "text":
            return text_models.TextClassifier(num_classes, **options)
        image_arch = str(options.pop("image_arch", "cnn"))
        image_model = build_model(image_arch, num_classes, image_size)
        return text_models.MultimodalClassifier(num_classes, image_arch, image_model, **options)
    if options:
        raise ValueError(f"model {arch!r} takes no options, got {sorted(options)}")
    if arch == "cnn":
        return MarketplaceCNN(num_classes, image_size)
    if arch == "resnet50":
        return build_resnet50(num_classes)  # global average pooling: any image_size works
    if arch == "efficientnet_lite0":
        return EfficientNetLite0(num_classes)  # global average pooling too
    raise ValueError(f"unknown model {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


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
