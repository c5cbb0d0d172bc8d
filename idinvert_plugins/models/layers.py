"""Building blocks shared by the StyleGAN2 generator and the discriminators.

Everything here is plain PyTorch (no compiled ops), runs on CPU and CUDA, keeps ``channels_last`` inputs in
that layout where it can, works under bf16/fp16 autocast and is twice differentiable (R1 and path-length
regularisers need gradients of gradients).

* FIR resampling: :func:`setup_filter`, :func:`upfirdn2d`, :func:`upsample2d`, :func:`downsample2d` -
  the up-sample / pad / FIR-filter / down-sample primitive of StyleGAN2 (the ``[1, 3, 3, 1]`` filter).
* Equalised learning rate: :class:`EqualLinear`, :class:`EqualConv2d` store weights as N(0, 1) (divided by
  ``lr_mul``) and scale them at run time by ``lr_mul / sqrt(fan_in)`` (Karras et al. 2018, section 4.1).
* :func:`bias_act`: bias + leaky ReLU x sqrt(2) (+ optional clamp), the StyleGAN2 activation.
* :func:`conv2d_resample`: a convolution fused with FIR up- or down-sampling.
* :func:`modulated_conv2d`: weight modulation / demodulation (StyleGAN2 paper, section 2.2).
* :class:`MinibatchStd`: the minibatch standard-deviation feature of the discriminators.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

Padding = int | Sequence[int]

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # keeps the activations' second moment after a leaky ReLU (He et al.)


# -- FIR filtering ----------------------------------------------------------------------------------------
def setup_filter(taps: Sequence[float] | torch.Tensor = (1, 3, 3, 1), normalize: bool = True) -> torch.Tensor:
    """The 2-D separable FIR filter ``outer(taps, taps)``, normalised to sum 1 by default (``[k, k]``)."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.ndim == 1:
        f = f[:, None] * f[None, :]
    if normalize:
        f = f / f.sum()
    return f


def _pad4(padding: Padding) -> tuple[int, int, int, int]:
    """``int`` or ``(x, y)`` or ``(x0, x1, y0, y1)`` -> ``(x0, x1, y0, y1)``."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    if len(padding) == 4:
        return padding  # type: ignore[return-value]
    raise ValueError(f"padding must be an int or 2 or 4 ints, got {padding}")


def upfirdn2d(
    x: torch.Tensor, f: torch.Tensor, up: int = 1, down: int = 1, padding: Padding = 0, gain: float = 1.0
) -> torch.Tensor:
    """Up-sample by zero insertion, pad, convolve with the 2-D FIR filter ``f`` and keep every ``down``-th
    pixel. ``padding`` is ``(x0, x1, y0, y1)`` (negative values crop); ``gain`` scales the filter (``up**2``
    keeps the signal's magnitude after zero insertion). Same semantics as the NVlabs/rosinality op."""
    n, c, h, w = x.shape
    px0, px1, py0, py1 = _pad4(padding)
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    if min(px0, px1, py0, py1) < 0:
        x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    # conv2d is a correlation: flip the filter to convolve (a no-op for the symmetric StyleGAN filters).
    weight = (f * gain).flip([0, 1]).to(x.dtype)[None, None].expand(c, 1, *f.shape)
    x = F.conv2d(x, weight, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2, padding: Padding = 0) -> torch.Tensor:
    """FIR up-sampling by ``up`` (output ``up`` times larger when ``padding`` is 0)."""
    px0, px1, py0, py1 = _pad4(padding)
    fh, fw = f.shape
    pad = (px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2)
    return upfirdn2d(x, f, up=up, padding=pad, gain=up * up)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: int = 2, padding: Padding = 0) -> torch.Tensor:
    """FIR down-sampling by ``down`` (output ``down`` times smaller when ``padding`` is 0)."""
    px0, px1, py0, py1 = _pad4(padding)
    fh, fw = f.shape
    pad = (px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2, py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2)
    return upfirdn2d(x, f, down=down, padding=pad)


# -- activation -------------------------------------------------------------------------------------------
def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    act: str = "linear",
    gain: float | None = None,
    clamp: float | None = None,
    dim: int = 1,
) -> torch.Tensor:
    """``clamp(act(x + b) * gain)``. ``act`` is ``"linear"`` or ``"lrelu"`` (slope 0.2, default gain
    sqrt(2)); ``b`` is broadcast along ``dim``; ``clamp`` limits the result to ``[-clamp, clamp]``."""
    if act not in ("linear", "lrelu"):
        raise ValueError(f"unknown activation {act!r}; use 'linear' or 'lrelu'")
    if act == "lrelu":
        gain = LRELU_GAIN if gain is None else gain
    gain = 1.0 if gain is None else float(gain)
    shape = [1] * x.ndim
    shape[dim] = -1
    if act == "lrelu" and gain > 0:
        # lrelu is positively homogeneous: lrelu(x + b) * g == lrelu(g * x + g * b), which saves one pass over
        # the activations (this epilogue runs after every conv).
        x = x * gain if b is None else torch.add((b * gain).to(x.dtype).reshape(shape), x, alpha=gain)
        x = F.leaky_relu(x, LRELU_SLOPE)
    else:
        if b is not None:
            x = x + b.to(x.dtype).reshape(shape)
        if act == "lrelu":
            x = F.leaky_relu(x, LRELU_SLOPE)
        if gain != 1:
            x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale ``x`` to unit mean square along ``dim`` (the "pixel norm" of the mapping input)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


# -- equalised-learning-rate layers -----------------------------------------------------------------------
class EqualLinear(nn.Module):
    """Fully connected layer with equalised learning rate: ``act(x @ (w * lr_mul / sqrt(in)).T + b * lr_mul)``.

    ``bias_init`` is the bias's initial value in output units (1 for the style affines, so styles start
    around 1). ``activation`` is ``"linear"`` or ``"lrelu"``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: str = "linear",
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init) / lr_mul)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias is not None else None
        if self.activation == "linear":
            return F.linear(x, w, b)
        return bias_act(F.linear(x, w), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, activation={self.activation}"


class EqualConv2d(nn.Module):
    """Convolution with equalised learning rate, optional FIR up/down-sampling, bias and activation.

    ``up=2`` up-samples (transposed conv + FIR), ``down=2`` down-samples (FIR + strided conv), with the
    ``resample_filter`` taps. ``conv_clamp`` clamps the output as in StyleGAN2-ADA (None = off).
    The activation gain (sqrt(2) for lrelu) is applied before the clamp.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
        lr_mul: float = 1.0,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", setup_filter(resample_filter), persistent=False)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_channels * kernel_size * kernel_size)
        self.bias_gain = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        x = conv2d_resample(x, w, self.resample_filter, up=self.up, down=self.down, padding=self.padding)
        b = self.bias * self.bias_gain if self.bias is not None else None
        return bias_act(x, b, act=self.activation, clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"activation={self.activation}, up={self.up}, down={self.down}"
        )


# -- convolution with resampling --------------------------------------------------------------------------
def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    groups: int = 1,
) -> torch.Tensor:
    """``conv2d(x, w)`` (a correlation, weight ``[out, in/groups, k, k]``) fused with FIR up-sampling
    (``up > 1``: a strided transposed convolution followed by the FIR filter ``f``, the StyleGAN2 order) or
    FIR down-sampling (``down > 1``: the filter, then a strided convolution). With ``padding = k // 2`` the
    output is ``up`` times larger or ``down`` times smaller than the input."""
    if up == 1 and down == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    if f is None:
        raise ValueError("conv2d_resample needs a resampling filter when up or down > 1")
    if up > 1 and down > 1:
        raise ValueError("conv2d_resample does not combine up- and down-sampling")
    out_channels, in_per_group, kh, kw = w.shape
    fh, fw = f.shape
    if down > 1:
        pad = (
            padding + (fw - down + 1) // 2,
            padding + (fw - down) // 2,
            padding + (fh - down + 1) // 2,
            padding + (fh - down) // 2,
        )
        x = upfirdn2d(x, f, padding=pad)
        return F.conv2d(x, w, stride=down, groups=groups)
    # Up-sampling: a transposed conv (stride ``up``) inserts the zeros and applies the kernel at once; the
    # FIR filter then smooths the result. Paddings chosen so the output is exactly ``up`` times the input.
    px0 = padding + (fw + up - 1) // 2 - (kw - 1)
    px1 = padding + (fw - up) // 2 - (kw - up)
    py0 = padding + (fh + up - 1) // 2 - (kh - 1)
    py1 = padding + (fh - up) // 2 - (kh - up)
    pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
    if groups == 1:
        wt = w.transpose(0, 1)
    else:  # [G*O, I, k, k] -> [G*I, O, k, k], the grouped transposed-conv layout
        wt = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
        wt = wt.reshape(groups * in_per_group, out_channels // groups, kh, kw)
    x = F.conv_transpose2d(x, wt, stride=up, padding=(pyt, pxt), groups=groups)
    return upfirdn2d(x, f, padding=(px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt), gain=up * up)


def demodulation_coefficients(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """``1 / ||weight * styles||_2`` per sample and output channel (``[N, out]``), in float32.

    ``sum_i s_i^2 * sum_k w_oik^2`` as an ``[N, in] @ [in, out]`` product: the same value as the norm of the
    modulated weights without materialising the ``[N, out, in, k, k]`` tensor. Autocast is off so fp16 runs
    cannot overflow in the squares."""
    with torch.autocast(device_type=styles.device.type, enabled=False):
        return (styles.float().square() @ weight.float().square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    fused: bool = True,
) -> torch.Tensor:
    """Modulated convolution of StyleGAN2: the weight's input channels are scaled per sample by ``styles``
    ``[N, in]``, and with ``demodulate`` each output channel is renormalised to unit expected magnitude.
    ``noise`` (broadcastable to the output) is added after the (de)modulated conv, before any bias.

    ``fused=True`` folds the per-sample weights into one grouped convolution (groups = batch size);
    ``fused=False`` scales the activations instead (``x * s``, shared-weight conv, ``* d``), which keeps
    ``channels_last`` and batches well - the same numbers up to float rounding.
    """
    n = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    dcoefs = demodulation_coefficients(weight, styles) if demodulate else None  # [N, O], float32

    if not fused:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), resample_filter, up=up, padding=padding)
        if dcoefs is not None and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(n, -1, 1, 1))
        if dcoefs is not None:
            return x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        return x if noise is None else x + noise.to(x.dtype)

    scale = styles.reshape(n, 1, in_channels)
    if dcoefs is not None:
        scale = scale * dcoefs.reshape(n, out_channels, 1)
    w = weight.unsqueeze(0) * scale.reshape(n, -1, in_channels, 1, 1)  # [N, O, I, k, k]
    x = x.reshape(1, n * in_channels, *x.shape[2:])
    w = w.reshape(n * out_channels, in_channels, kh, kw).to(x.dtype)
    x = conv2d_resample(x, w, resample_filter, up=up, padding=padding, groups=n)
    x = x.reshape(n, out_channels, *x.shape[2:])
    return x if noise is None else x + noise.to(x.dtype)


# -- discriminator helpers --------------------------------------------------------------------------------
class MinibatchStd(nn.Module):
    """Appends ``num_channels`` feature maps holding the standard deviation of the features over groups of
    ``group_size`` samples (averaged over channels and pixels), as in ProGAN/StyleGAN discriminators.
    The batch size must be divisible by the group size (it is clipped to the batch size)."""

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        if n % g:
            raise ValueError(f"batch size {n} is not divisible by the minibatch-stddev group size {g}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)  # [G, M, F, c, H, W], sample i is in group i % M
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [M, F]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # [N, F, H, W]
        return torch.cat([x, y.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"
