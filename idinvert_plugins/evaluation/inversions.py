"""The evaluation's inputs and its expensive part: test images, and their inversions cached on disk.

Test images are a domain's test split (:meth:`~idinvert_plugins.domain_spec.Domain.images`; the default
domain unless one is named): image ``i`` of the ``n_total``-image dataset with seed ``seed`` for ``i`` from the
first test index (65,000 of 70,000, the IDInvert FFHQ protocol) on, rendered at the generator's resolution with
their ground-truth attributes.

Inverting hundreds of images with optimisation takes hours on a CPU, so every method's codes are saved
(safetensors, one file per method) in a cache folder, batch by batch as they are produced. A later call
with the same method, options, models and images reuses them; a call for more images extends them; a call
that was interrupted resumes after the last saved batch. The cache is keyed by a fingerprint of the
generator and encoder weights, so retrained models are never mixed with stale codes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ..domain_spec import Domain
from ..images import from_uint8
from ..models.base import Generator

#: The methods of the paper's Table I, in its order, with the labels the report uses.
METHOD_LABELS: dict[str, str] = {
    "conventional": "Conventional encoder",
    "domain-guided": "Domain-guided encoder",
    "image2stylegan": "Image2StyleGAN",
    "idinvert": "IDInvert (encoder + domain-regularised optimisation)",
}
METHODS = tuple(METHOD_LABELS)
#: the methods' short names in tables and figure labels
SHORT_LABELS = {"conventional": "conventional", "domain-guided": "domain-guided",
                "image2stylegan": "Image2StyleGAN", "idinvert": "IDInvert"}


@dataclass
class TestImages:
    """Test-split images ``[N, 3, R, R]`` in [-1, 1], their dataset indices and ground-truth attributes
    (arrays as :meth:`Domain.images <idinvert_plugins.domain_spec.Domain.images>` returns them) and the name
    of their ``domain`` (None: the default domain)."""

    images: torch.Tensor
    indices: list[int]
    attributes: dict[str, np.ndarray]
    seed: int = 0
    n_total: int = 70_000
    domain: str | None = None

    def __len__(self) -> int:
        return len(self.indices)


def load_test_images(n: int, resolution: int, *, seed: int = 0, n_total: int = 70_000,
                     domain: str | Domain | None = None) -> TestImages:
    """The first ``n`` images of ``domain``'s test split (dataset ``seed``, ``n_total`` images; None: the
    default domain), rendered at ``resolution``."""
    from ..domains import default_domain, get_domain

    dom = get_domain(domain)
    sizes = dom.split_sizes(n_total)
    if not 1 <= n <= sizes["test"]:
        raise ValueError(f"n must be between 1 and the {sizes['test']} test images of a {n_total}-image dataset, "
                         f"got {n}")
    indices = list(range(sizes["train"], sizes["train"] + n))
    images, attributes = dom.images(seed, indices, resolution)
    name = None if dom is default_domain() else dom.name  # the default domain's caches predate domains
    return TestImages(from_uint8(images), indices, attributes, seed, n_total, name)


def fingerprint(module: nn.Module | None) -> str:
    """A short hash of a network's parameters and buffers (detects retrained or different weights)."""
    if module is None:
        return "none"
    digest = hashlib.sha1()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Inversion:
    """Codes ``[N, L, D]`` of one method for the first N test images, with the wall time they took."""

    method: str
    codes: torch.Tensor
    seconds: float
    options: dict[str, Any] = field(default_factory=dict)
    reused: int = 0  # how many of the codes came from the cache

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / max(len(self.codes), 1)


class CodeCache:
    """Per-method code files ``<folder>/<key>.safetensors`` with a JSON fingerprint in their metadata.

    ``key`` names the method and variant (``idinvert``, ``idinvert-ldom0.5``, ...). A file holds the codes of
    the first ``count`` test images; ``seconds`` is the inversion wall time spent on them in all.
    """

    def __init__(self, folder: str | Path | None) -> None:
        self.folder = Path(folder) if folder is not None else None

    def path(self, key: str) -> Path | None:
        return None if self.folder is None else self.folder / f"{key}.safetensors"

    def load(self, key: str, identity: Mapping[str, Any]) -> tuple[torch.Tensor, float] | None:
        """The cached codes and seconds for ``key`` if the file's identity matches, else None."""
        path = self.path(key)
        if path is None or not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                codes = f.get_tensor("codes")
        except Exception:  # a truncated file from a killed run: recompute
            return None
        if json.loads(meta.get("identity", "null")) != json.loads(json.dumps(dict(identity))):
            return None
        return codes, float(meta.get("seconds", "0"))

    def save(self, key: str, identity: Mapping[str, Any], codes: torch.Tensor, seconds: float) -> None:
        path = self.path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({"codes": codes.detach().float().cpu().contiguous()}, str(tmp),
                  metadata={"identity": json.dumps(dict(identity)), "seconds": repr(float(seconds)),
                            "count": str(len(codes))})
        tmp.replace(path)  # atomic: an interrupted save never leaves a half-written cache file


def invert_cached(
    method: str,
    generator: Generator,
    test: TestImages,
    *,
    encoders: Mapping[str, nn.Module | None],
    feature_net: nn.Module | None = None,
    options: Mapping[str, Any] | None = None,
    cache: CodeCache | None = None,
    key: str | None = None,
    batch: int = 16,
    progress: bool = True,
) -> Inversion:
    """Invert the test images with one of :data:`METHODS` (``options`` go to the inverter), reusing and
    extending the cached codes of ``key`` (default: the method's name).

    ``encoders`` maps ``"domain-guided"`` and ``"conventional"`` to encoder networks (or None).
    """
    from ..plugins import get_plugins

    if method not in METHODS:
        raise ValueError(f"unknown evaluation method {method!r}; choose from {', '.join(METHODS)}")
    options = dict(options or {})
    if method in ("conventional", "domain-guided"):
        inverter, encoder = get_plugins().get("inverter", "encoder"), encoders.get(method)
        options.pop("steps", None)
    elif method == "idinvert":
        inverter, encoder = get_plugins().get("inverter", "idinvert"), encoders.get("domain-guided")
    else:
        inverter, encoder = get_plugins().get("inverter", "image2stylegan"), None
    if inverter.requires_encoder and encoder is None:
        which = "conventional" if method == "conventional" else "domain-guided"
        raise ValueError(f"method {method!r} needs the {which} encoder, which was not given")
    uses_features = inverter.uses_feature_net and feature_net is not None
    identity = {
        "method": method, "options": options, "generator": fingerprint(generator), "encoder": fingerprint(encoder),
        "feature_net": fingerprint(feature_net) if uses_features else "none",
        "seed": test.seed, "n_total": test.n_total, "first_index": test.indices[0],
        "resolution": int(test.images.shape[-1]), **({"domain": test.domain} if test.domain else {}),
    }  # fmt: skip
    cache = cache or CodeCache(None)
    key = key or method
    found = cache.load(key, identity)
    codes = found[0] if found is not None else torch.empty(0, generator.num_layers, generator.w_dim)
    seconds = found[1] if found is not None else 0.0
    reused = min(len(codes), len(test))
    if len(codes) >= len(test):
        n_cached = len(codes)
        return Inversion(method, codes[: len(test)], seconds * len(test) / n_cached, options, reused)

    from tqdm.auto import tqdm

    device = generator.w_avg.device
    features = feature_net if uses_features else None
    # untimed warm-up on one image: the first call of a network pays one-off setup costs (kernel selection,
    # allocator growth) that would otherwise be charged to the first batch's seconds per image
    warmup = {**options, "steps": 1} if "steps" in options else options
    inverter.invert(generator, test.images[:1].to(device), encoder=encoder, feature_net=features, **warmup)
    todo = range(len(codes), len(test), batch)
    bar = tqdm(total=len(test), initial=len(codes), desc=f"invert {key}", unit="img", disable=not progress)
    try:
        for start in todo:
            images = test.images[start : start + batch].to(device)
            result = inverter.invert(generator, images, encoder=encoder, feature_net=features, **options)
            codes = torch.cat([codes, result.codes.detach().float().cpu()])
            seconds += result.seconds
            cache.save(key, identity, codes, seconds)
            bar.update(len(images))
    finally:
        bar.close()
    return Inversion(method, codes, seconds, options, reused)


@torch.no_grad()
@torch.no_grad()
def render_codes(generator: Generator, codes: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """``G.synthesis(codes)`` (``noise_mode="const"``) in batches, on the CPU, clamped to [-1, 1]."""
    device = generator.w_avg.device
    out = [generator.synthesis(codes[i : i + batch].to(device), noise_mode="const").float().cpu()
           for i in range(0, len(codes), batch)]
    return torch.cat(out).clamp(-1, 1) if out else torch.empty(0)
