"""The pictures of docs/real-photos.md: a synthetic scene of two toy faces found, aligned, edited and pasted back
(the offline path), and the astronaut aligned with dlib and pasted back (the [align] extra).

    python benchmarks/align_figures.py --out docs/figures
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

COLOURS = [(255, 60, 60), (60, 220, 60), (70, 120, 255), (255, 220, 0)]


def annotate(photo: np.ndarray, transforms) -> Image.Image:
    """The photo with each face's quad (top edge thicker) and four landmarks drawn."""
    img = Image.fromarray(photo)
    d = ImageDraw.Draw(img)
    for tf in transforms:
        q = [tuple(p) for p in tf.quad]
        d.line(q + [q[0]], fill=(255, 255, 255), width=2)
        d.line([q[0], q[3]], fill=(255, 255, 0), width=4)
        for (x, y), c in zip(tf.landmarks, COLOURS):
            d.ellipse([x - 3, y - 3, x + 3, y + 3], outline=c, width=2)
    return img


def row(images, height: int = 300, gap: int = 6) -> Image.Image:
    tiles = [Image.fromarray(i) if isinstance(i, np.ndarray) else i for i in images]
    tiles = [t.resize((round(t.width * height / t.height), height), Image.Resampling.LANCZOS) for t in tiles]
    out = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), height), (255, 255, 255))
    x = 0
    for t in tiles:
        out.paste(t, (x, 0))
        x += t.width + gap
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/figures")
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from idinvert_plugins.align import align_photo, paste_faces, photo_mask
    from idinvert_plugins.editors.manipulate import Manipulate
    from idinvert_plugins.images import from_uint8, to_uint8
    from idinvert_plugins.latent import render
    from idinvert_plugins.pipeline import Pipeline
    from idinvert_plugins.toyfaces.scenes import random_scene

    pipe = Pipeline.from_pretrained("toyfaces-stylegan2-64")
    scene = random_scene(11, (420, 300), faces=2, side=(110, 170), angle=30, resolution=256).image
    faces = align_photo(scene, aligner="toyfaces", template="toyfaces", size=64, face="all")
    x = torch.stack([from_uint8(f.crop) for f in faces])
    result = pipe.invert(x, "idinvert", steps=50)
    edited = Manipulate()(pipe.generator, result.latent.wp, direction=pipe.direction("smile"), strength=3.0,
                          render=False).codes
    with torch.no_grad():
        recon = render(pipe.generator, result.latent)
        smiled = render(pipe.generator, result.latent.with_wp(edited))
    pasted, mask = paste_faces(scene, list(smiled), [f.transform for f in faces])
    crops = [np.concatenate([f.crop, to_uint8(r), to_uint8(s)], axis=0) for f, r, s in zip(faces, recon, smiled)]
    row([annotate(scene, [f.transform for f in faces]), *crops, pasted]).save(out / "real-photos-scene.png")
    print(f"wrote {out / 'real-photos-scene.png'}")

    try:
        from skimage import data

        from idinvert_plugins.align.aligners import DlibAligner

        if DlibAligner().unavailable():
            raise ImportError(DlibAligner().unavailable())
    except ImportError as exc:
        print(f"astronaut figure skipped: {exc}")
        return
    photo = data.astronaut()
    [face] = align_photo(photo, aligner="dlib", template="ffhq", size=256)
    back, m = paste_faces(photo, [face.crop], [face.transform])
    tint = face.crop.copy()
    tint[..., 1:] = (tint[..., 1:] * 0.5).astype(np.uint8)  # a visible "edit": the face turned red
    red, _ = paste_faces(photo, [tint], [face.transform])
    mask_img = (np.repeat(photo_mask(face.transform)[..., None], 3, -1) * 255).astype(np.uint8)
    row([annotate(photo, [face.transform]), face.crop, mask_img, red]).save(out / "real-photos-astronaut.png")
    print(f"wrote {out / 'real-photos-astronaut.png'}")


if __name__ == "__main__":
    main()
