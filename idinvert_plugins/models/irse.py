"""The backbones of the pSp family of encoders (pSp, e4e, ReStyle): IR-SE50 and ResNet-34, pure PyTorch.

Module and parameter names are those of the official code, so an official ``state_dict`` loads strictly:

* **IR-SE** (``models/encoders/helpers.py`` of eladrich/pixel2style2pixel, from TreB1eN/InsightFace_Pytorch):
  an input layer ``input_layer.{0,1,2}`` = 3x3 conv (``input_nc`` -> 64, no bias) -> BatchNorm -> PReLU, then
  ``body.0 ... body.{n-1}``: :class:`BottleneckIRSE` units in four stages (IR-SE50: 3, 4, 14, 3 units of
  widths 64, 128, 256, 512), the first unit of each stage with stride 2.
* **ResNet-34** (ReStyle's ``ResNetBackboneEncoder``): ``conv1`` (7x7, stride 2, no bias) -> ``bn1`` ->
  ``relu`` (a PReLU despite its name), no max-pool, then ``body.*``: torchvision's 16 ``BasicBlock``\\ s
  (layers 3, 4, 6, 3 of widths 64, 128, 256, 512) numbered consecutively.

Both take a ``stages`` table (units per stage) and ``widths`` (channels per stage), so small domains can use
a shallow, narrow body (e.g. ``stages=(1, 1, 2, 1), widths=(16, 32, 64, 128)``) with the same code; the
official layouts are the defaults. Each body halves the resolution four times (input / 16 at the end).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: units per stage of the IR-SE backbones of InsightFace (``get_blocks(num_layers)``)
IRSE_STAGES: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
#: torchvision ResNet-34's blocks per layer
RESNET34_STAGES: tuple[int, int, int, int] = (3, 4, 6, 3)
DEFAULT_WIDTHS: tuple[int, int, int, int] = (64, 128, 256, 512)


class SEModule(nn.Module):
    """Squeeze-excitation: global average pool -> 1x1 conv ``fc1`` (C -> C/r, no bias) -> ReLU -> 1x1 conv ``fc2``
    (C/r -> C, no bias) -> sigmoid, multiplied into the input."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, padding=0, bias=False)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s


class BottleneckIRSE(nn.Module):
    """One IR-SE unit (``bottleneck_IR_SE``): ``res_layer`` = BN(in) -> 3x3 conv in->out -> PReLU(out) -> 3x3 conv
    out->out (stride s) -> BN(out) -> SE; ``shortcut_layer`` = a 1x1 max-pool with stride s (same width) or a
    1x1 conv with stride s + BN. Output: residual + shortcut, no activation after the sum.
    ``se=False`` gives the plain IR unit (``bottleneck_IR``, no ``res_layer.5``)."""

    def __init__(self, in_channels: int, depth: int, stride: int, se: bool = True) -> None:
        super().__init__()
        self.stride = stride
        if in_channels == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, (1, 1), stride, bias=False), nn.BatchNorm2d(depth))
        layers: list[nn.Module] = [
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, (3, 3), (1, 1), 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        ]
        if se:
            layers.append(SEModule(depth, 16))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class BasicBlock(nn.Module):
    """torchvision's ResNet ``BasicBlock``: 3x3 conv (stride s) -> BN -> ReLU -> 3x3 conv -> BN, plus the input or
    ``downsample`` (1x1 conv stride s + BN) when the shape changes, then ReLU."""

    def __init__(self, in_channels: int, depth: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, depth, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(depth)
        self.conv2 = nn.Conv2d(depth, depth, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(depth)
        self.downsample = (nn.Sequential(nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
                           if stride != 1 or in_channels != depth else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


def _check_table(stages: Sequence[int], widths: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    stages, widths = tuple(int(s) for s in stages), tuple(int(w) for w in widths)
    if len(stages) != 4 or len(widths) != 4 or min(stages) < 1 or min(widths) < 1:
        raise ValueError(f"a backbone has 4 stages of >= 1 unit with a width each; got stages={list(stages)}, "
                         f"widths={list(widths)}")
    return stages, widths


def irse_body(stages: Sequence[int] = IRSE_STAGES[50], widths: Sequence[int] = DEFAULT_WIDTHS,
              se: bool = True, stem: int = 64) -> nn.Sequential:
    """The ``body`` of an IR-SE backbone: its units in order (``get_blocks`` flattened). The first stage starts
    from ``stem`` channels (the input layer's width: 64 in the official code)."""
    stages, widths = _check_table(stages, widths)
    units: list[nn.Module] = []
    in_channels = stem
    for n, depth in zip(stages, widths):
        units.append(BottleneckIRSE(in_channels, depth, 2, se))
        units += [BottleneckIRSE(depth, depth, 1, se) for _ in range(n - 1)]
        in_channels = depth
    return nn.Sequential(*units)


def irse_input_layer(input_nc: int, stem: int = 64) -> nn.Sequential:
    """``input_layer``: 3x3 conv (``input_nc`` -> ``stem`` (64), stride 1, no bias) -> BatchNorm -> PReLU."""
    return nn.Sequential(nn.Conv2d(input_nc, stem, (3, 3), 1, 1, bias=False), nn.BatchNorm2d(stem), nn.PReLU(stem))


def resnet_body(stages: Sequence[int] = RESNET34_STAGES, widths: Sequence[int] = DEFAULT_WIDTHS,
                stem: int = 64) -> nn.Sequential:
    """The ``body`` of ReStyle's ResNet backbone: torchvision's ``layer1..layer4`` blocks in one sequence (the
    first stage keeps the resolution, the others halve it), starting from the ``stem`` channels of ``conv1``."""
    stages, widths = _check_table(stages, widths)
    blocks: list[nn.Module] = []
    in_channels = stem
    for i, (n, depth) in enumerate(zip(stages, widths)):
        blocks.append(BasicBlock(in_channels, depth, 1 if i == 0 else 2))
        blocks += [BasicBlock(depth, depth, 1) for _ in range(n - 1)]
        in_channels = depth
    return nn.Sequential(*blocks)


class ArcFaceIRSE50(nn.Module):
    """ArcFace IR-SE50 (TreB1eN/InsightFace_Pytorch ``Backbone(50, 0.6, 'ir_se')``, the identity network of the
    pSp family's ID loss): 112 x 112 faces -> unit embeddings ``[N, 512]``. Keys ``input_layer.*``, ``body.*``,
    ``output_layer.{0,3,4}`` (BatchNorm2d, Linear(512 * 7 * 7, 512), BatchNorm1d), so ``model_ir_se50.pth`` loads
    strictly."""

    def __init__(self, drop_ratio: float = 0.6) -> None:
        super().__init__()
        self.input_layer = irse_input_layer(3)
        self.body = irse_body(IRSE_STAGES[50])
        self.output_layer = nn.Sequential(nn.BatchNorm2d(512), nn.Dropout(drop_ratio), nn.Flatten(),
                                          nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.output_layer(self.body(self.input_layer(x)))
        return F.normalize(x, dim=1)


def stage_ends(stages: Sequence[int]) -> tuple[int, ...]:
    """Index in ``body`` of the last unit of each stage: (2, 6, 20, 23) for IR-SE50 (the official code taps
    c1, c2, c3 after units 6, 20 and 23)."""
    ends, total = [], 0
    for n in stages:
        total += int(n)
        ends.append(total - 1)
    return tuple(ends)


__all__ = ["ArcFaceIRSE50", "BasicBlock", "BottleneckIRSE", "DEFAULT_WIDTHS", "IRSE_STAGES", "RESNET34_STAGES",
           "SEModule", "irse_body", "irse_input_layer", "resnet_body", "stage_ends"]
