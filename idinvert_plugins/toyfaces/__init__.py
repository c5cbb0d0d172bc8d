"""The toy-face domain, bundled with idinvert-plugins as a built-in domain plugin
(:mod:`idinvert_plugins.builtins.toyfaces`).

No real face dataset can be shipped, so the project renders its own "real" images: portraits framed like aligned
FFHQ crops, with continuous variation, lighting and textured backgrounds, and with every generating factor
recorded as a ground-truth attribute. Generators, encoders and an attribute classifier are trained on them
exactly as a FFHQ user would train on photos. Everything is deterministic: image ``i`` of the dataset with seed
``s`` depends only on ``(s, i)``. Split by job:

* :mod:`.attributes` - the attribute schema, labels and attribute sampling (dataset and OOD set);
* :mod:`.painter` - drawing primitives and the face painter (:func:`render`);
* :mod:`.dataset` - arrays and CSV tables, splits, batches rendered by index, writing dataset folders;
* :mod:`.ood` - the out-of-distribution set;
* :mod:`.commands` - ``python -m idinvert_plugins.toyfaces.commands {render,ood,figures,bench}``.
"""

from __future__ import annotations

from .attributes import (
    ATTRIBUTE_SPECS,
    ATTRIBUTES,
    BACKGROUNDS,
    DEFAULT_RESOLUTION,
    EYE_COLORS,
    EYEGLASSES_P,
    FORMAT,
    FORMAT_VERSION,
    GLASSES_COLORS,
    GLASSES_STYLES,
    HAIR_COLORS,
    HAIR_PARTS,
    HAIR_STYLES,
    HEAD_SHAPES,
    OCCLUDERS,
    OOD_COLUMNS,
    OOD_KINDS,
    RENDER_PARAMS,
    RESOLUTIONS,
    TEST_FRACTION,
    AttributeSpec,
    binary_label,
    category_index,
    category_name,
    sample_attributes,
)
from .dataset import (
    OOD_CATEGORIES,
    attributes_from_arrays,
    attributes_to_arrays,
    read_attributes_csv,
    render_batch,
    render_dataset,
    split_of,
    split_sizes,
    write_attributes_csv,
)
from .ood import (
    render_ood,
    sample_ood_attributes,
)
from .painter import (
    render,
    render_index,
)

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_SPECS",
    "AttributeSpec",
    "BACKGROUNDS",
    "DEFAULT_RESOLUTION",
    "EYEGLASSES_P",
    "EYE_COLORS",
    "FORMAT",
    "FORMAT_VERSION",
    "GLASSES_COLORS",
    "GLASSES_STYLES",
    "HAIR_COLORS",
    "HAIR_PARTS",
    "HAIR_STYLES",
    "HEAD_SHAPES",
    "OCCLUDERS",
    "OOD_CATEGORIES",
    "OOD_COLUMNS",
    "OOD_KINDS",
    "RENDER_PARAMS",
    "RESOLUTIONS",
    "TEST_FRACTION",
    "attributes_from_arrays",
    "attributes_to_arrays",
    "binary_label",
    "category_index",
    "category_name",
    "read_attributes_csv",
    "render",
    "render_batch",
    "render_dataset",
    "render_index",
    "render_ood",
    "sample_attributes",
    "sample_ood_attributes",
    "split_of",
    "split_sizes",
    "write_attributes_csv",
]
