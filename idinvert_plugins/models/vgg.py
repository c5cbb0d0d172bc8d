"""VGG16 convolutional trunk, the perceptual feature network of In-Domain GAN Inversion.

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition" (ICLR 2015).
IDInvert compares images by the ``conv4_3`` activations (after its ReLU, before ``pool4``) of an
ImageNet-trained VGG16, fed Caffe/Keras-style inputs:

* ``[-1, 1]`` is mapped to ``[0, 255]``;
* RGB is reordered to BGR;
* the per-channel means ``(103.939, 116.779, 123.68)`` (BGR) are subtracted; there is no division by a std.

The trunk is the ``features`` part of torchvision's ``vgg16()``, with the same layer indices, so its
state dict uses torchvision's keys (``features.{idx}.weight`` / ``.bias``). The official IDInvert
``vgg16.pth`` names the same layers ``layer{idx}.weight``; reading weight files (both layouts, ``.pth`` through the
restricted unpickler) is :mod:`idinvert_plugins.convert.vgg`'s job: this module holds the network only.
Only the layers up to the chosen output are built (up to ``relu4_3``: 10 convs, 7.6 M parameters).

No VGG16 weights ship with this library (they are ImageNet-trained and 59 MB); bring your own file, e.g.
torchvision's ``vgg16-397923af.pth`` re-saved as safetensors, or the official IDInvert ``vgg16.pth``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

#: torchvision ``vgg16().features``: (index, name, kind, in_channels, out_channels). ReLUs follow every
#: conv, max-pools end every block.
VGG16_LAYERS: tuple[tuple[int, str, str, int, int], ...] = (
    (0, "conv1_1", "conv", 3, 64), (1, "relu1_1", "relu", 64, 64),
    (2, "conv1_2", "conv", 64, 64), (3, "relu1_2", "relu", 64, 64),
    (4, "pool1", "pool", 64, 64),
    (5, "conv2_1", "conv", 64, 128), (6, "relu2_1", "relu", 128, 128),
    (7, "conv2_2", "conv", 128, 128), (8, "relu2_2", "relu", 128, 128),
    (9, "pool2", "pool", 128, 128),
    (10, "conv3_1", "conv", 128, 256), (11, "relu3_1", "relu", 256, 256),
    (12, "conv3_2", "conv", 256, 256), (13, "relu3_2", "relu", 256, 256),
    (14, "conv3_3", "conv", 256, 256), (15, "relu3_3", "relu", 256, 256),
    (16, "pool3", "pool", 256, 256),
    (17, "conv4_1", "conv", 256, 512), (18, "relu4_1", "relu", 512, 512),
    (19, "conv4_2", "conv", 512, 512), (20, "relu4_2", "relu", 512, 512),
    (21, "conv4_3", "conv", 512, 512), (22, "relu4_3", "relu", 512, 512),
    (23, "pool4", "pool", 512, 512),
    (24, "conv5_1", "conv", 512, 512), (25, "relu5_1", "relu", 512, 512),
    (26, "conv5_2", "conv", 512, 512), (27, "relu5_2", "relu", 512, 512),
    (28, "conv5_3", "conv", 512, 512), (29, "relu5_3", "relu", 512, 512),
    (30, "pool5", "pool", 512, 512),
)  # fmt: skip
LAYER_INDEX: dict[str, int] = {name: idx for idx, name, *_ in VGG16_LAYERS}
CONV_INDICES: tuple[int, ...] = tuple(idx for idx, _, kind, *_ in VGG16_LAYERS if kind == "conv")
#: Caffe / Keras ImageNet means, in BGR order, on the [0, 255] scale.
CAFFE_BGR_MEAN: tuple[float, float, float] = (103.939, 116.779, 123.68)
#: The keys of torchvision's VGG16 classifier head (accepted and ignored when loading a whole network).
CLASSIFIER_KEYS: frozenset[str] = frozenset(f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias"))


class VGG16Features(nn.Module):
    """VGG16 convolutional trunk from Caffe-preprocessed input up to ``output_layer``.

    Input: RGB images ``[N, 3, H, W]`` in ``[input_min, input_max]`` (any H, W divisible by the
    pooling). Output: the activations of ``output_layer``, ``[N, 512, H / 8, W / 8]`` for ``relu4_3``.
    ``self.config`` holds the constructor arguments, so ``VGG16Features(**config)`` rebuilds it.
    """

    architecture: ClassVar[str] = "vgg16-features"

    def __init__(self, output_layer: str = "relu4_3", input_min: float = -1.0, input_max: float = 1.0) -> None:
        """
        Args:
            output_layer: name of the last layer run, e.g. ``"relu4_3"`` (IDInvert), ``"conv4_3"``
                (before the ReLU), ``"relu3_3"``; see :data:`VGG16_LAYERS`.
            input_min, input_max: the range of the input images, mapped to [0, 255].
        """
        super().__init__()
        if output_layer not in LAYER_INDEX:
            raise ValueError(f"unknown VGG16 layer {output_layer!r}; choose one of {list(LAYER_INDEX)}")
        if not input_max > input_min:
            raise ValueError(f"input_max must be > input_min, got [{input_min}, {input_max}]")
        self.config: dict[str, Any] = dict(output_layer=output_layer, input_min=input_min, input_max=input_max)
        self.output_layer = output_layer
        self.input_min = input_min
        self.input_max = input_max
        layers: list[nn.Module] = []
        for idx, _, kind, c_in, c_out in VGG16_LAYERS[: LAYER_INDEX[output_layer] + 1]:
            if kind == "conv":
                layers.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1))
            elif kind == "relu":
                layers.append(nn.ReLU(inplace=True))
            else:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            assert len(layers) == idx + 1
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1), persistent=False)

    @property
    def out_channels(self) -> int:
        return VGG16_LAYERS[LAYER_INDEX[self.output_layer]][4]

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """RGB in ``[input_min, input_max]`` -> Caffe input: BGR on [0, 255] minus the ImageNet means."""
        x = (images - self.input_min) * (255.0 / (self.input_max - self.input_min))
        return x.flip(1) - self.mean.to(x.dtype)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"VGG16 input must be RGB images [N, 3, H, W], got {list(images.shape)}")
        return self.features(self.preprocess(images))
