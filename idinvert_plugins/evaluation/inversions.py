"""The expensive part shared by ``idinvert bench`` and ``idinvert evaluate``: test images, and every method's
inversions of them, cached on disk. Both commands invert through :func:`invert_entry` into one
:class:`LatentCache`, so with the same cache folder neither inverts a method the other already inverted.

Test images are a domain's test split (:meth:`~idinvert_plugins.domain_spec.Domain.images`; the default
domain unless one is named): image ``i`` of the ``n_total``-image dataset with seed ``seed`` for ``i`` from the
first test index (65,000 of 70,000, the IDInvert FFHQ protocol) on, rendered at the generator's resolution with
their ground-truth attributes.

Inverting hundreds of images with optimisation takes hours on a CPU, so each method's latents (W+ codes and every
part: noise maps, weight offsets, ...), seconds and per-batch error curves are saved in a cache folder
(``CACHE/<generator>/<method>.safetensors`` + ``.json``), batch by batch as they are produced. The record's
identity names the method, the options that differ from its declared defaults, its description, fingerprints of
the generator, encoder and perceptual network weights and the images; a later call with the same identity reuses
the latents, a call for more images extends them, an interrupted call resumes after the last saved batch, and a
file whose identity differs (other options, retrained weights, another tool's or an older layout's file) is
inverted again, never read.

``idinvert evaluate``'s four methods of the paper's Table I are bench entries (:data:`EVALUATION_ENTRIES`): the
domain-guided encoder is bench's ``encoder`` row, the conventional one ``encoder@conventional``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ..domain_spec import Domain
from ..images import from_uint8
from ..latent import Latent, render
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
#: The cache folder both commands use unless told otherwise (``--cache``).
DEFAULT_CACHE = "runs/bench-cache"
#: The version of the cache records' identity (a record of another version is never read).
CACHE_VERSION = 2
#: Each Table I method as a bench entry: (registered inverter, the evaluation's encoder it runs with).
EVALUATION_ENTRIES: dict[str, tuple[str, str | None]] = {
    "conventional": ("encoder", "conventional"),
    "domain-guided": ("encoder", "domain-guided"),
    "image2stylegan": ("image2stylegan", None),
    "idinvert": ("idinvert", "domain-guided"),
}
#: The bench's names of a pipeline's encoders: its ``encoder`` (domain-guided) and ``encoders.<name>``.
ENCODER_SLOTS = {"domain-guided": "encoder", "conventional": "encoders.conventional"}


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


def domain_images_id(test: TestImages, domain: str) -> dict[str, Any]:
    """The cache identity of a domain's test images: which split, from which index, at which resolution (the
    count is not part of it: a cache of more images serves fewer, and fewer are extended)."""
    return {"images": "domain", "domain": domain, "seed": test.seed, "n_total": test.n_total,
            "first_index": test.indices[0], "resolution": int(test.images.shape[-1])}


def fingerprint(module: nn.Module | None) -> str:
    """A short hash of a network's parameters and buffers (detects retrained or different weights)."""
    if module is None:
        return "none"
    digest = hashlib.sha1()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def jsonable(value: Any) -> Any:
    """NaN becomes None, infinities the strings "inf"/"-inf" (JSON has neither); tuples become lists."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return jsonable(value.item())
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return jsonable(value.item())
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    return repr(value)


# -- the per-method cache --------------------------------------------------------------------------------------------
class LatentCache:
    """One method's latents of the first ``count`` images (``<key>.safetensors``: ``wp`` and ``part/<name>/<key>``
    tensors) and its record (``<key>.json``: identity, seconds, per-batch curves, the last metric values)."""

    def __init__(self, folder: str | Path | None) -> None:
        self.folder = Path(folder) if folder is not None else None

    def _paths(self, key: str) -> tuple[Path, Path] | None:
        if self.folder is None:
            return None
        stem = re.sub(r"[^\w.@+-]+", "_", key)
        return self.folder / f"{stem}.safetensors", self.folder / f"{stem}.json"

    def load(self, key: str, identity: Mapping[str, Any]) -> tuple[Latent, dict[str, Any]] | None:
        """The cached latents and record of ``key`` if its record's identity is ``identity``, else None."""
        paths = self._paths(key)
        if paths is None or not paths[0].is_file() or not paths[1].is_file():
            return None
        try:
            record = json.loads(paths[1].read_text(encoding="utf-8"))
            if record.get("identity") != json.loads(json.dumps(dict(identity))):
                return None
            tensors: dict[str, torch.Tensor] = {}
            with safe_open(str(paths[0]), framework="pt") as f:
                for name in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                    tensors[name] = f.get_tensor(name)
            parts: dict[str, dict[str, torch.Tensor]] = {}
            for name, t in tensors.items():
                if name.startswith("part/"):
                    _, part, k = name.split("/", 2)
                    parts.setdefault(part, {})[k] = t
            latent = Latent(tensors["wp"], parts)
        except Exception:  # noqa: BLE001 - a truncated file from a killed run, another tool's file: recompute
            return None
        if len(latent) != record.get("count"):
            return None
        return latent, record

    def save(self, key: str, latent: Latent, record: dict[str, Any]) -> None:
        """Write the latents and the record (atomically: a killed run never leaves a half-written file)."""
        paths = self._paths(key)
        if paths is None:
            return
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        tensors = {"wp": latent.wp.detach().float().cpu().contiguous().clone()}
        for part, values in latent.parts.items():
            for k, t in values.items():
                tensors[f"part/{part}/{k}"] = t.detach().cpu().contiguous().clone()
        tmp = paths[0].with_suffix(".tmp")
        save_file(tensors, str(tmp))
        tmp.replace(paths[0])
        self.save_record(key, {**record, "count": len(latent)})

    def refusal(self, key: str, identity: Mapping[str, Any]) -> str | None:
        """Why the method refused these inputs last time (e.g. an encoder of another architecture), if it did."""
        paths = self._paths(key)
        if paths is None or not paths[1].is_file() or paths[0].is_file():
            return None
        try:
            record = json.loads(paths[1].read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        if record.get("identity") != json.loads(json.dumps(dict(identity))):
            return None
        return record.get("refused")

    def read_record(self, key: str) -> dict[str, Any] | None:
        """The record of ``key`` as it is on disk now (None: none, or unreadable)."""
        paths = self._paths(key)
        if paths is None or not paths[1].is_file():
            return None
        try:
            return json.loads(paths[1].read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def save_record(self, key: str, record: dict[str, Any]) -> None:
        """Write the record alone (metric values, a refusal)."""
        paths = self._paths(key)
        if paths is None:
            return
        paths[1].parent.mkdir(parents=True, exist_ok=True)
        tmp = paths[1].with_suffix(".jtmp")
        tmp.write_text(json.dumps(jsonable(record), indent=1) + "\n", encoding="utf-8")
        tmp.replace(paths[1])


def generator_cache(cache_dir: str | Path | None, name: str) -> LatentCache:
    """The cache of one generator's inversions, ``cache_dir/<name as a file name>/`` (None: no cache)."""
    slug = re.sub(r"[^\w.-]+", "_", name).strip("_") or "generator"
    return LatentCache(Path(cache_dir) / slug if cache_dir is not None else None)


# -- one method's inversion -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One row of the leaderboard: a registered method run with one of the pipeline's encoders. ``variant``
    names a run of the method with other options kept beside its main one (the l_dom sweep's
    ``ldom0.5``)."""

    key: str
    method: str
    encoder: str | None = None  # "encoder" (the pipeline's), "encoders.<name>", or None
    variant: str | None = None

    @property
    def cache_key(self) -> str:
        """The cache file's name: the method, the encoder it ran with and the variant."""
        key = self.method if self.encoder in (None, "encoder") else f"{self.method}@{self.encoder}"
        return f"{key}+{self.variant}" if self.variant else key


@dataclass
class MethodRun:
    """One entry's inversion: its latents for the test images, wall seconds in all, per-batch curves, how many
    came from the cache, the options it ran with, and the cache record (where metric values are kept)."""

    entry: Entry
    latent: Latent
    seconds: float
    batches: list[dict[str, Any]]
    reused: int
    options: dict[str, Any]
    identity: dict[str, Any]
    record: dict[str, Any]

    @property
    def codes(self) -> torch.Tensor:
        """The W+ codes ``[N, L, D]`` (the latents without their other parts)."""
        return self.latent.wp

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / max(len(self.latent), 1)

    def curve(self) -> dict[str, list[float]]:
        """Mean MSE against seconds per image along the steps, over the batches (weighted by their size)."""
        lengths = [len(b["mse"]) for b in self.batches]
        if not lengths:
            return {"seconds": [], "mse": []}
        k = min(lengths)
        total = sum(b["n"] for b in self.batches)
        mse = [sum(b["n"] * b["mse"][i] for b in self.batches) / total for i in range(k)]
        if all(len(b.get("t") or ()) == k for b in self.batches):  # step timestamps the method reported
            secs = [sum(b["t"][i] for b in self.batches) / total for i in range(k)]
        elif k > 1:  # no timestamps: the steps spread evenly over the method's time, the first point at 0
            secs = [sum(b["seconds"] * i / (k - 1) for b in self.batches) / total for i in range(k)]
        else:
            secs = [sum(b["seconds"] for b in self.batches) / total]
        return {"seconds": secs, "mse": mse}


def _batch_curve(result: Any, images: torch.Tensor, stamps: Sequence[float]) -> tuple[list[float], list[float] | None]:
    """The mean MSE at each step's start and at the end (the pixel term of the method's losses where it has one,
    its unweighted per-pixel MSE, and the final reconstruction's error measured here), and when it was reached
    (seconds since the call began): from the step callback's timestamps ``stamps`` where the method reports its
    last ``len(losses)`` steps through it (the refiners' steps come last), else None."""
    final = float((result.images.detach().float().cpu().clamp(-1, 1) - images.cpu()).pow(2).flatten(1).mean(1).mean())
    steps = [float(np.mean(s["pix"])) for s in result.losses if "pix" in s]
    if len(steps) != len(result.losses) or not steps:
        return [final], [float(result.seconds)]
    times = None
    n = len(steps)
    if len(stamps) >= n:
        last = list(stamps[-n:])  # last[j]: the end of step j + 1, i.e. the state after j + 1 steps
        first = last[0] - (last[1] - last[0] if n > 1 else 0.0)  # the state before the first step
        times = [first, *last[:-1], float(result.seconds)]
    return [*steps, final], times


def canonical_options(inverter: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without those equal to the inverter's declared default: ``{"steps": 100}`` and ``{}`` run
    IDInvert alike, so they are one cache identity (the defaults themselves are in the identity through the
    method's description)."""
    try:
        defaults = {p.name: p.default for p in inverter.params if not getattr(p, "required", False)}
    except Exception:  # noqa: BLE001 - a composition naming a stage that is not registered
        defaults = {}
    return jsonable({k: v for k, v in options.items() if not (k in defaults and jsonable(v) == jsonable(defaults[k]))})


def invert_entry(entry: Entry, inverter: Any, generator: Any, test: TestImages, images_id: Mapping[str, Any],
                 cache: LatentCache, *, options: Mapping[str, Any], encoder: nn.Module | None,
                 feature_net: nn.Module | None, batch: int, bar: Any = None) -> MethodRun:
    """Invert the test images with one entry (``options`` go to the inverter; ``feature_net`` is used where the
    inverter uses one), reusing and extending its cache (see the module docstring). Before inverting, an untimed
    one-image warm-up (one step) pays one-off costs and tells whether the method accepts the encoder: a
    ``ValueError`` there means it does not, and is remembered in the cache."""
    G = generator
    feature_net = feature_net if getattr(inverter, "uses_feature_net", False) else None
    options = dict(options)
    describe = inverter.describe() if hasattr(inverter, "describe") else {"name": entry.method}
    identity = {
        "version": CACHE_VERSION, "method": entry.method, "options": canonical_options(inverter, options),
        "described": hashlib.sha1(json.dumps(jsonable(describe), sort_keys=True).encode()).hexdigest()[:16],
        "generator": fingerprint(G), "encoder": fingerprint(encoder), "feature_net": fingerprint(feature_net),
        **images_id,
    }  # fmt: skip
    refused = cache.refusal(entry.cache_key, identity)
    if refused:
        raise ValueError(refused)
    found = cache.load(entry.cache_key, identity)
    latent = found[0] if found is not None else None
    record = found[1] if found is not None else {}
    seconds = float(record.get("seconds", 0.0))
    batches: list[dict[str, Any]] = list(record.get("batches", []))
    done = len(latent) if latent is not None else 0
    reused = min(done, len(test))
    device = G.w_avg.device
    if done < len(test):
        declared = {p.name for p in getattr(inverter, "params", ())}
        warm = {**options, "steps": 1} if "steps" in declared else options
        try:
            inverter.invert(G, test.images[:1].to(device), encoder=encoder, feature_net=feature_net, **warm)
        except ValueError as exc:  # refused (e.g. the encoder does not fit): remembered, so reruns skip it at once
            cache.save_record(entry.cache_key, {"identity": identity, "refused": str(exc)})
            raise
    for start in range(done, len(test), batch):
        images = test.images[start : start + batch]
        stamps: list[float] = []
        t0 = time.perf_counter()

        def stamp(step: int, codes: torch.Tensor, terms: Any, stamps: list[float] = stamps, t0: float = t0) -> None:
            stamps.append(time.perf_counter() - t0)

        result = inverter.invert(G, images.to(device), encoder=encoder, feature_net=feature_net, callback=stamp,
                                 **options)
        got = result.latent.detach().to("cpu")
        latent = got if latent is None else Latent.cat([latent, got])
        seconds += result.seconds
        mse, times = _batch_curve(result, images, stamps)
        batches.append({"n": len(images), "seconds": result.seconds, "mse": mse, "t": times})
        # the record's count is the stored latents' (a record written later, e.g. with metric values, keeps it)
        record = {**record, "identity": identity, "seconds": seconds, "batches": batches, "metrics": None,
                  "count": len(latent)}
        cache.save(entry.cache_key, latent, record)
        if bar is not None:
            bar.update(len(images))
    assert latent is not None
    if len(latent) > len(test):  # a larger earlier run: its first images, and the time of the batches that hold them
        keep, count = [], 0
        for b in batches:
            if count >= len(test):
                break
            keep.append(b)
            count += b["n"]
        # per image as in the kept batches, whose per-step curve the time to quality reads (batches of one run may
        # have been inverted at different times, under different loads)
        seconds = sum(b["seconds"] for b in keep) * len(test) / max(count, 1) if keep else seconds
        latent, batches = latent[: len(test)], keep
    elif bar is not None and reused:
        bar.update(reused)
    return MethodRun(entry, latent, seconds, batches, reused, options, identity, record)


def evaluation_entry(method: str, variant: str | None = None) -> Entry:
    """The bench entry of one of :data:`METHODS` (``variant``: a run with other options kept beside it)."""
    if method not in EVALUATION_ENTRIES:
        raise ValueError(f"unknown evaluation method {method!r}; choose from {', '.join(METHODS)}")
    inverter, role = EVALUATION_ENTRIES[method]
    slot = ENCODER_SLOTS[role] if role is not None else None
    key = inverter if slot in (None, "encoder") else f"{inverter}@{slot.removeprefix('encoders.')}"
    return Entry(key, inverter, slot, variant)


def invert_cached(
    method: str,
    generator: Generator,
    test: TestImages,
    *,
    encoders: Mapping[str, nn.Module | None],
    feature_net: nn.Module | None = None,
    options: Mapping[str, Any] | None = None,
    cache: LatentCache | None = None,
    variant: str | None = None,
    batch: int = 16,
    progress: bool = True,
) -> MethodRun:
    """Invert the test images with one of :data:`METHODS` (``options`` go to the inverter) through its bench entry
    (:func:`evaluation_entry`, :func:`invert_entry`), reusing and extending the cached latents that ``idinvert
    bench`` or an earlier evaluation left in ``cache``.

    ``encoders`` maps ``"domain-guided"`` and ``"conventional"`` to encoder networks (or None).
    """
    from tqdm.auto import tqdm

    from ..domains import get_domain
    from ..plugins import get_plugins

    entry = evaluation_entry(method, variant)
    role = EVALUATION_ENTRIES[method][1]
    inverter = get_plugins().get("inverter", entry.method)
    encoder = encoders.get(role) if role is not None else None
    options = dict(options or {})
    if entry.method == "encoder":  # an encoder alone has no steps
        options.pop("steps", None)
    if inverter.requires_encoder and encoder is None:
        raise ValueError(f"method {method!r} needs the {role} encoder, which was not given")
    images_id = domain_images_id(test, get_domain(test.domain).name)
    bar = tqdm(total=len(test), desc=f"invert {entry.cache_key}", unit="img", disable=not progress)
    try:
        return invert_entry(entry, inverter, generator, test, images_id, cache or LatentCache(None), options=options,
                            encoder=encoder, feature_net=feature_net, batch=batch, bar=bar)
    finally:
        bar.close()


@torch.no_grad()
def render_codes(generator: Generator, codes: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """``G.synthesis(codes)`` (``noise_mode="const"``) in batches, on the CPU, clamped to [-1, 1]."""
    device = generator.w_avg.device
    out = [generator.synthesis(codes[i : i + batch].to(device), noise_mode="const").float().cpu()
           for i in range(0, len(codes), batch)]
    return torch.cat(out).clamp(-1, 1) if out else torch.empty(0)


@torch.no_grad()
def render_latent(G: Any, latent: Latent, batch: int = 32) -> torch.Tensor:
    """Images of a latent with all its parts, in batches, on the CPU, clamped to [-1, 1]."""
    device = G.w_avg.device
    out = [render(G, latent[i : i + batch].to(device), noise_mode="const").float().cpu()
           for i in range(0, len(latent), batch)]
    return torch.cat(out).clamp(-1, 1)
