"""Identity networks for the identity loss of the pSp family (pSp, e4e, ReStyle): ArcFace IR-SE50.

An identity network maps images in [-1, 1] (``[N, 3, R, R]``, the generator's framing) to identity embeddings
``[N, D]``; the loss is ``1 - cos(ID(y), ID(x))`` (:mod:`idinvert_plugins.training.style_encoder`). Identity
networks are loss networks registered by name (:mod:`.networks`); the built-in one is
:class:`ArcFaceIRSE50Network`, ``arcface-ir-se50:PATH_OR_HUB_ID``: TreB1eN/InsightFace_Pytorch's
``model_ir_se50.pth`` (read with the restricted unpickler, never running code from the file) or a
``.safetensors`` of the same state dict, applied to the face region as pSp's ``IDLoss`` does. The weights do not
ship with this library (``../shared/research/encoders-and-real-photos.md`` §2.3: only as a local file).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..models.irse import ArcFaceIRSE50
from .networks import IDENTITY, LossNetwork


class ArcFaceIdentity(nn.Module):
    """ArcFace IR-SE50 on the face region: pSp's ``IDLoss`` crop ``[35:223, 32:220]`` of a 256 px image (scaled
    to the image's size), averaged down to 112 x 112, then the network: unit embeddings ``[N, 512]``."""

    name = "arcface-ir-se50"

    def __init__(self, net: ArcFaceIRSE50) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        s = images.shape[-1] / 256
        crop = images[:, :, int(35 * s):int(223 * s), int(32 * s):int(220 * s)]
        return self.net(F.adaptive_avg_pool2d(crop, (112, 112)))


def load_arcface_ir_se50(path: str | Path) -> ArcFaceIRSE50:
    """ArcFace IR-SE50 from a TreB1eN-layout state dict (``model_ir_se50.pth``, read with
    :func:`~idinvert_plugins.convert.safe_pickle.safe_load`; a ``{"state_dict": ...}`` wrapper and DataParallel's
    ``module.`` prefix are accepted) or a ``.safetensors`` of it; strict, in eval mode."""
    from ..convert.safe_pickle import safe_load

    path = Path(path).expanduser()
    state: Any = safe_load(path)  # safetensors files too (recognised by their header)
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds a {type(state).__name__}, not an ArcFace IR-SE50 state dict")
    state = {str(k).removeprefix("module."): v for k, v in state.items()}
    net = ArcFaceIRSE50()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:3])[:300]
        raise ValueError(f"{path} is not an ArcFace IR-SE50 state dict (TreB1eN/InsightFace_Pytorch "
                         f"model_ir_se50.pth layout): {detail}") from None
    return net.eval()


class ArcFaceIRSE50Network(LossNetwork):
    """``arcface-ir-se50:PATH_OR_HUB_ID``: the identity network of pSp, e4e and ReStyle's ID loss."""

    name = "arcface-ir-se50"
    kind = IDENTITY
    description = "ArcFace IR-SE50 (TreB1eN/InsightFace_Pytorch) on the face crop, pSp's ID loss"
    weights = "model_ir_se50.pth of TreB1eN/InsightFace_Pytorch (ArcFace IR-SE50, or a .safetensors of it)"
    files = ("model_ir_se50.safetensors", "model_ir_se50.pth", "model.safetensors")

    def build(self, path: Path | None, **options: Any) -> nn.Module:
        assert path is not None
        return ArcFaceIdentity(load_arcface_ir_se50(path))


__all__ = ["ArcFaceIRSE50Network", "ArcFaceIdentity", "load_arcface_ir_se50"]
