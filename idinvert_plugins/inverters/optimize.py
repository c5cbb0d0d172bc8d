"""The optimisation loop shared by the optimisation-based inverters.

Objective, per image i (paper eq. 4 of In-Domain GAN Inversion; each mean runs over all elements of that
image's tensors)::

    l_pix * mean((x_i - G(w_i))^2) + l_feat * mean((F(x_i) - F(G(w_i)))^2) + l_dom * mean((w_i - E(G(w_i)))^2)

With a mask m the first two terms become ``mean(((x_i - G(w_i)) * m_i)^2)`` and
``mean((F(x_i * m_i) - F(G(w_i) * m_i))^2)`` (the official semantic-diffusion loss).

The per-image losses are summed before ``backward`` (as the official ``diffuse`` does with
``backward(ones)``), so each code receives exactly its own image's gradient; Adam is element-wise, hence a
batch inverts exactly as its images would one at a time (up to floating-point noise).

No wasted work: G, E and F are frozen (no parameter gradients), ``F(x)`` is computed once and terms with
weight 0 are skipped. On CPU this makes a step about 2-2.5x faster than the official loop, which computes
parameter gradients of all three networks and re-runs ``F(x)`` every step; what remains is the forward and
input-gradient passes of G, F and E, dominated by convolutions. ``autocast=True`` runs those passes in
bfloat16 (1.6x faster per step at 256x256 on the 2-core CPU, ``docs/performance.md``); the final
reconstructions and losses are then recomputed in float32 (F stays in the precision of its cached targets).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ..latent import Latent, render
from ..models.base import Generator, NoiseMode
from .base import InversionResult, StepCallback, encode

TERMS = ("total", "pix", "feat", "dom")


@contextlib.contextmanager
def frozen(*modules: nn.Module | None) -> Iterator[None]:
    """Eval mode and ``requires_grad=False`` on every parameter for the duration; both restored after."""
    modules = tuple(m for m in modules if m is not None)
    flags = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    modes = [(sub, sub.training) for m in modules for sub in m.modules()]
    try:
        for m in modules:
            m.eval()
            m.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for sub, mode in modes:
            sub.train(mode)


def bf16(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on ``device`` when ``enabled`` (a no-op context otherwise)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


class ReconstructionObjective:
    """The per-image inversion loss of a fixed batch of target images (see the module docstring).

    Calling it with codes ``[n, L, D]`` of the images ``index`` (a slice of the batch, default all) returns
    the reconstructions and a dict of per-image terms ``[n]``: ``"pix"`` always, ``"feat"`` if
    ``l_feat > 0``, ``"dom"`` if ``l_dom > 0``, and their weighted sum ``"total"``.
    """

    def __init__(
        self,
        generator: Generator,
        targets: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        feature_net: nn.Module | None = None,
        encoder: nn.Module | None = None,
        l_pix: float = 1.0,
        l_feat: float = 0.0,
        l_dom: float = 0.0,
        add_w_avg: bool | None = None,
        noise_mode: NoiseMode = "const",
        feature_autocast: bool = False,
        autocast: bool = False,
        chunk_size: int | None = None,
        parts: Latent | None = None,
    ) -> None:
        if l_feat and feature_net is None:
            raise ValueError(f"l_feat={l_feat} needs a feature network: pass feature_net= (e.g. "
                             "idinvert_plugins.losses.load_feature_network(get_domain().feature_net), the "
                             "domain's from idinvert_plugins.domains) or l_feat=0")
        if l_dom and encoder is None:
            raise ValueError(f"l_dom={l_dom} (domain regulariser) needs an encoder: pass encoder= or l_dom=0")
        self.generator = generator
        self.targets = targets
        self.mask = mask
        self.feature_net = feature_net if l_feat else None
        self.encoder = encoder if l_dom else None
        self.l_pix, self.l_feat, self.l_dom = float(l_pix), float(l_feat), float(l_dom)
        self.add_w_avg = add_w_avg
        self.noise_mode = noise_mode
        self.feature_autocast = feature_autocast
        self.autocast = autocast
        self.chunks = batch_chunks(targets.shape[0], chunk_size)
        #: a latent whose parts (noise maps, weight offsets, ...) every render keeps while the codes change
        self.parts = parts if parts is not None and parts.parts else None
        self.target_features = None
        if self.feature_net is not None:
            with torch.no_grad():
                self.target_features = torch.cat(
                    [self.features(self.masked(targets[c], c)) for c in self.chunks])

    def masked(self, images: torch.Tensor, index: slice) -> torch.Tensor:
        return images if self.mask is None else images * self.mask[index]

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """F(images), in the same precision as the cached target features."""
        assert self.feature_net is not None
        with bf16(images.device, self.feature_autocast or self.autocast):
            return self.feature_net(images).float()

    def __call__(self, codes: torch.Tensor, index: slice = slice(None), *,
                 exact: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reconstructions and per-image loss terms; ``exact`` runs G and E in float32 even with ``autocast``
        (the final evaluation: the returned reconstructions are float32 renders of the returned codes)."""
        fast = self.autocast and not exact
        with bf16(codes.device, fast):
            if self.parts is None:
                images = self.generator.synthesis(codes, noise_mode=self.noise_mode).float()
            else:
                images = render(self.generator, self.parts[index].with_wp(codes), noise_mode=self.noise_mode).float()
        error = self.masked(self.targets[index] - images, index)
        terms: dict[str, torch.Tensor] = {"pix": error.pow(2).flatten(1).mean(1)}
        total = self.l_pix * terms["pix"]
        if self.target_features is not None:
            diff = self.target_features[index] - self.features(self.masked(images, index))
            terms["feat"] = diff.pow(2).flatten(1).mean(1)
            total = total + self.l_feat * terms["feat"]
        if self.encoder is not None:
            with bf16(codes.device, fast):
                rec = encode(self.encoder, self.generator, images, self.add_w_avg).float()
            terms["dom"] = (codes - rec).pow(2).flatten(1).mean(1)
            total = total + self.l_dom * terms["dom"]
        terms["total"] = total
        return images, terms

    def evaluate(self, codes: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reconstructions and loss terms of all images, without gradients."""
        with torch.no_grad():
            parts = [self(codes[c], c, exact=True) for c in self.chunks]
        return torch.cat([p[0] for p in parts]), {k: torch.cat([p[1][k] for p in parts]) for k in parts[0][1]}


def batch_chunks(n: int, chunk_size: int | None) -> list[slice]:
    """Slices of at most ``chunk_size`` images covering a batch of ``n`` (one slice if None)."""
    size = n if chunk_size is None else max(1, int(chunk_size))
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def encode_images(encoder: nn.Module, generator: Generator, images: torch.Tensor, add_w_avg: bool | None,
                  chunk_size: int | None) -> torch.Tensor:
    """E(x) as W+ for a batch, in chunks, with the encoder frozen (the starting point of the optimisers)."""
    with frozen(encoder), torch.no_grad():
        return torch.cat([encode(encoder, generator, images[c], add_w_avg)
                          for c in batch_chunks(images.shape[0], chunk_size)])


def resolve_feature_weight(l_feat: float | None, feature_net: nn.Module | None) -> float:
    """``None`` means the feature network's recommended weight (0 without a network)."""
    if l_feat is None:
        return float(getattr(feature_net, "loss_weight", 1.0)) if feature_net is not None else 0.0
    return float(l_feat)


def optimize_codes(
    objective: ReconstructionObjective,
    init_codes: torch.Tensor,
    *,
    steps: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    progress: bool = False,
    callback: StepCallback | None = None,
    desc: str = "inverting",
) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Adam on the codes (default betas and eps, no schedule: the official IDInvert optimiser).

    Each step runs the forward and backward passes chunk by chunk (``objective.chunks``), accumulating the
    per-image gradients, then takes one Adam step for the whole batch. Returns the codes after the last step
    and, per step, the detached loss terms at the codes that step started from.
    """
    codes = init_codes.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([codes], lr=lr, betas=betas)
    history: list[dict[str, torch.Tensor]] = []
    bar = None
    if progress and steps > 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=desc, leave=False)
    try:
        for step in range(1, steps + 1):
            optimizer.zero_grad(set_to_none=True)
            parts = []
            for chunk in objective.chunks:
                _, terms = objective(codes[chunk], chunk)
                terms["total"].sum().backward()
                parts.append({k: v.detach() for k, v in terms.items()})
            optimizer.step()
            detached = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
            history.append(detached)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v.mean().item():.4g}" for k, v in detached.items()})
            if callback is not None and callback(step, codes.detach().clone(), detached):
                break
    finally:
        if bar is not None:
            bar.close()
    return codes.detach(), history


def losses_to_lists(history: list[dict[str, torch.Tensor]]) -> list[dict[str, list[float]]]:
    """Per-step dicts of tensors -> per-step dicts of float lists (one device sync for the whole curve)."""
    if not history:
        return []
    stacked = {k: torch.stack([h[k] for h in history]).double().cpu().tolist() for k in history[0]}
    return [{k: stacked[k][t] for k in stacked} for t in range(len(history))]


#: Pixels per forward/backward pass on CPU (see :func:`cpu_chunk_size`).
CPU_CHUNK_PIXELS = 64 * 64 * 8


def cpu_chunk_size(pixels_per_image: int) -> int:
    """Images per forward/backward pass on CPU: as many as fit ``CPU_CHUNK_PIXELS`` (8 at 64x64, 2 at
    128x128, 1 at 256x256 and above).

    Small images gain from batching, large ones lose (``docs/performance.md``, ``benchmarks/inversion.py``, 2
    cores): an IDInvert step at 64x64 costs 0.053 s per image at batch 1 and 0.018 s at batch 16, while at
    256x256 a batch of 16 took 14.6 s per step in chunks of 1 and 34 s in one pass (and 10 GB instead of
    2.5 GB), as feature maps outgrow the cache and every elementwise pass goes through memory.
    """
    return max(1, CPU_CHUNK_PIXELS // max(1, int(pixels_per_image)))


def run_inversion(
    generator: Generator,
    images: torch.Tensor,
    init_codes: torch.Tensor,
    *,
    steps: int,
    lr: float,
    encoder: nn.Module | None = None,
    feature_net: nn.Module | None = None,
    mask: torch.Tensor | None = None,
    l_pix: float = 1.0,
    l_feat: float = 0.0,
    l_dom: float = 0.0,
    add_w_avg: bool | None = None,
    noise_mode: NoiseMode = "const",
    feature_autocast: bool = False,
    autocast: bool = False,
    chunk_size: int | None = None,
    progress: bool = False,
    callback: StepCallback | None = None,
    desc: str = "inverting",
    parts: Latent | None = None,
) -> InversionResult:
    """Optimise W+ codes from ``init_codes`` towards ``images`` with the networks frozen, then render them
    and evaluate the loss at the result. ``steps=0`` only renders and evaluates.

    ``chunk_size=None`` picks :func:`cpu_chunk_size` on CPU and the whole batch on other devices. ``parts``: a
    latent whose parts every render keeps (the codes are optimised with them in place).
    """
    if chunk_size is None and images.device.type == "cpu":
        chunk_size = cpu_chunk_size(images.shape[-2] * images.shape[-1])
    with frozen(generator, encoder, feature_net):
        objective = ReconstructionObjective(
            generator, images, mask=mask, feature_net=feature_net, encoder=encoder, l_pix=l_pix, l_feat=l_feat,
            l_dom=l_dom, add_w_avg=add_w_avg, noise_mode=noise_mode, feature_autocast=feature_autocast,
            autocast=autocast, chunk_size=chunk_size, parts=parts,
        )  # fmt: skip
        codes, history = optimize_codes(objective, init_codes, steps=steps, lr=lr, progress=progress,
                                        callback=callback, desc=desc)
        reconstructions, final = objective.evaluate(codes)
    return InversionResult(
        codes=codes,
        images=reconstructions.detach(),
        losses=losses_to_lists(history),
        init_codes=init_codes.detach(),
        final_losses=losses_to_lists([{k: v.detach() for k, v in final.items()}])[0],
        info={"weights": {"l_pix": l_pix, "l_feat": l_feat, "l_dom": l_dom},
              "feature_net": getattr(feature_net, "name", None) if l_feat else None,
              "steps_run": len(history)},
    )
