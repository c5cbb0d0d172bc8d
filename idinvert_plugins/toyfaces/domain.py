"""The toy faces as a :class:`~idinvert_plugins.domain_spec.Domain`: what the core asks of the bundled domain
(attribute schema, labelled renders by index, app examples, its classifier and perceptual network, the naming
rule of its models, their training presets, and how photos of them are aligned: the ``toyfaces`` aligner of
:mod:`.aligner` and the ``toyfaces`` template). Registered by :mod:`idinvert_plugins.builtins.toyfaces`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..domain_spec import Domain
from .attributes import ATTRIBUTES, DEFAULT_RESOLUTION, HAIR_STYLES, OOD_KINDS, RESOLUTIONS
from .dataset import render_batch, split_of, split_sizes
from .ood import sample_ood_attributes
from .painter import render, render_index

#: test-split indices of the 70,000-image dataset with seed 0 shown as app examples (training: 0..64,999)
EXAMPLE_TEST_INDICES = (65000, 65001, 65002, 65003, 65004, 65005)
#: out-of-distribution kinds shown as app examples, in this order
EXAMPLE_OOD_KINDS = ("occluder_hand", "extreme_attributes", "head_shape", "rotated", "occluder_bar", "off_centre")

_CHANNELS_64 = {"4": 128, "8": 128, "16": 64, "32": 32, "64": 16}

#: GAN training presets of the bundled generators (overrides of ``training.gan.TrainConfig``'s defaults)
GAN_PRESETS: dict[str, dict[str, Any]] = {
    # Half-width 64x64 StyleGAN2, sized for CPU training (batch 32, bf16, channels_last).
    "toyfaces-stylegan2-64": dict(
        backend="stylegan2",
        resolution=64,
        generator=dict(z_dim=256, w_dim=256, mapping_layers=8, channels=_CHANNELS_64),
        discriminator=dict(channels=_CHANNELS_64),
        batch=32,
        lr=0.0025,
        r1_gamma=0.1,
        total_kimg=3000,
    ),
    # StyleGAN v1 as released by IDInvert (repeat_w=False: one w per layer, final tanh), same widths:
    # min(1024 // res, 128) = 128, 128, 64, 32, 16 for 4..64. The paper's loss (non-saturating logistic +
    # R1), but no progressive growing and lazy R1 (see training.gan's docstring).
    "toyfaces-stylegan-64": dict(
        backend="stylegan",
        resolution=64,
        generator=dict(
            z_dim=256, w_dim=256, mapping_layers=8, channel_base=1024, channel_max=128,
            repeat_w=False, final_tanh=True, fused_scale="auto",
        ),  # fmt: skip
        discriminator=dict(channel_base=1024, channel_max=128),
        batch=32,
        lr=0.002,
        r1_gamma=0.1,
        total_kimg=3000,
    ),
}

#: encoder training presets (overrides of ``training.encoder.EncoderTrainConfig``'s defaults)
ENCODER_PRESETS: dict[str, dict[str, Any]] = {
    # 64x64 toy faces (the bundled generators, w_dim 256, 10 or 12 W+ layers). Encoder widths 32 .. 192:
    # 9.1 M parameters for StyleGAN2's 10 layers (18 MB in fp16; 10.6 M / 21 MB for v1's 12), 7.9 M of them in
    # the dense head; about as much compute per image as the half-width G.
    "toyfaces-64": dict(
        encoder=dict(channel_base=32, channel_max=192),
        batch=32,
        lr_decay=0.8,
        lr_decay_kimg=250.0,
        total_kimg=1000.0,
        n_eval=64,
    ),
}

#: pSp / e4e / ReStyle training presets (overrides of ``training.style_encoder.StyleEncoderTrainConfig``'s defaults)
STYLE_ENCODER_PRESETS: dict[str, dict[str, Any]] = {
    # 64 px toy faces (w_dim 256, 10 W+ layers): an IR-SE body of 1, 2, 3, 1 units, 32 .. 128 channels, the
    # encoder reading the 64 px image directly (map2style blocks on 4, 8 and 16 px maps, 128 channels wide: 5.7 M
    # weights instead of 16 M at the official width). Sized for tens of kimg on a CPU: a larger learning rate
    # than the official 1e-4, e4e's progressive schedule compressed (w0 alone for 4 kimg, then one more layer
    # every 1.5 kimg: all ten by 17.5 kimg), ReStyle trained with 3 iterations per batch (the official 5)
    "toyfaces-64": dict(encoder=dict(stages=[1, 2, 3, 1], widths=[32, 64, 96, 128], stem=32, input_size=64,
                                     style_channels=128),
                        batch=16, lr=2e-4, total_kimg=500.0, progressive_start_kimg=4.0, progressive_step_kimg=1.5,
                        n_iters_per_batch=3, n_eval=64, checkpoint_kimg=2.0, snapshot_kimg=10.0, log_kimg=2.0),
}

#: where a toy face sits in an aligned crop (the fields of :class:`idinvert_plugins.align.Template`): the rendered
#: frame shows the whole head and the shoulders, so the quad is 1.23x FFHQ's (``align.fit_template`` on the
#: painter's landmarks of 2,000 training faces: the median scale and shift that map them onto the 64 px frame);
#: the paste-back mask covers head and hair
TEMPLATE: dict[str, Any] = dict(name="toyfaces", scale=1.23, shift=0.07, mask_center=(0.5, 0.48),
                                mask_radii=(0.40, 0.46), mask_feather=0.3)


class ToyFacesDomain(Domain):
    """The procedural toy faces bundled with idinvert-plugins (:mod:`idinvert_plugins.toyfaces`)."""

    name = "toyfaces"
    title = "toy faces"
    adjective = "toy-face"
    description = ("procedural portraits with 9 semantic attributes and ~25 nuisance factors, rendered by index "
                   "(the bundled domain)")
    attributes = ATTRIBUTES
    visible_when = {
        "glasses_style": ("eyeglasses", (1,)),
        "glasses_color": ("eyeglasses", (1,)),
        "lens_tint": ("eyeglasses", (1,)),
        "hair_length": ("hair_style", tuple(i for i, s in enumerate(HAIR_STYLES) if s != "bald")),
    }
    classifier = "toyfaces-classifier-64"
    feature_net = "classifier:toyfaces-classifier-64"
    resolution = 64
    model_prefix = "toyfaces-"
    default_generator = "toyfaces-stylegan2-64"
    alignment = {"aligner": "toyfaces", "template": "toyfaces"}
    templates = {"toyfaces": TEMPLATE}
    gan_presets = GAN_PRESETS
    encoder_presets = ENCODER_PRESETS
    style_encoder_presets = STYLE_ENCODER_PRESETS
    default_gan_preset = "toyfaces-stylegan2-64"
    default_encoder_preset = "toyfaces-64"
    default_style_encoder_preset = "toyfaces-64"

    def images(self, seed: int, indices: Sequence[int], resolution: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return render_batch(seed, indices, resolution)

    def split_sizes(self, n: int) -> dict[str, int]:
        return split_sizes(n)

    def split_of(self, index: int, n: int) -> str:
        return split_of(index, n)

    def examples(self, resolution: int) -> list[tuple[str, str, np.ndarray]]:
        """Six held-out test faces, then six out-of-distribution ones (at a renderable size)."""
        resolution = resolution if resolution in RESOLUTIONS else DEFAULT_RESOLUTION
        out = [(f"test-{i}", f"test face {i}", render_index(0, i, resolution)[0]) for i in EXAMPLE_TEST_INDICES]
        for kind in EXAMPLE_OOD_KINDS:
            attrs = sample_ood_attributes(0, OOD_KINDS.index(kind))
            out.append((f"ood-{kind}", f"out of distribution: {kind.replace('_', ' ')}", render(attrs, resolution)))
        return out


__all__ = ["ENCODER_PRESETS", "EXAMPLE_OOD_KINDS", "EXAMPLE_TEST_INDICES", "GAN_PRESETS", "STYLE_ENCODER_PRESETS",
           "TEMPLATE", "ToyFacesDomain"]
