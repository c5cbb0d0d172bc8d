"""Toy faces: the procedural face dataset bundled with idinvert-plugins.

No real face dataset can be shipped, so the project renders its own "real" images: portraits framed like
aligned FFHQ crops (face centred, hair, neck and shoulders), with continuous variation, lighting and
textured backgrounds, and with every generating factor recorded as a ground-truth attribute. Generators,
encoders and an attribute classifier are trained on them exactly as a FFHQ user would train on photos.

Everything is deterministic: image ``i`` of the dataset with seed ``s`` depends only on ``(s, i)``
(``np.random.default_rng([s, i])`` draws its attributes, and the attributes fully determine the pixels),
so any subset renders identically in any order, in any process. Pixels are reproducible bit for bit on one
machine and numpy build; other builds may differ by one grey level on rare pixels (transcendental
functions are not bit-exact across SIMD implementations).

Drawing works on signed distance fields in a frame whose coordinates run from -1 (left/top) to +1
(right/bottom); a pixel's coverage of a shape is its distance to the edge clipped to a one-pixel ramp,
which anti-aliases like a box filter. Only numpy and Pillow are used.

Main entry points: :func:`sample_attributes`, :func:`render`, :func:`render_index`, :func:`render_batch`,
:func:`render_dataset`, :func:`render_ood`, :data:`ATTRIBUTES` and :func:`binary_label`. From a shell::

    python -m idinvert_plugins.data.toyfaces render data/toyfaces64 --n 70000 --workers 2
    python -m idinvert_plugins.data.toyfaces ood data/toyfaces64_ood
    python -m idinvert_plugins.data.toyfaces figures docs/figures
    python -m idinvert_plugins.data.toyfaces bench
"""

from __future__ import annotations

# The toy faces live in the package idinvert_plugins.toyfaces, split by job; this module re-exports them so
# that existing imports (``from idinvert_plugins.data import toyfaces``) and ``python -m`` keep working.
from ..toyfaces import *  # noqa: F403
from ..toyfaces import __all__ as _PUBLIC
from ..toyfaces.commands import grid, main, make_figures  # noqa: F401
from ..toyfaces.painter import _check_resolution  # noqa: F401

__all__ = [*_PUBLIC, "grid", "main", "make_figures"]

if __name__ == "__main__":
    main()
