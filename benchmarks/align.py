"""Alignment milliseconds per photo (docs/performance.md, "Face alignment").

Times the aligners' ``detect`` (finding the faces and their landmarks), the crop (``align_face``) and the
paste-back of one face, per photo, median of ``--repeats`` runs after a warm-up:

* ``toyfaces`` on synthetic scenes of two toy faces (``toyfaces.scenes.random_scene``) at 320x240, 640x480 and
  1280x960 (faces scaled with the scene);
* ``dlib`` (the ``[align]`` extra) on the astronaut (512x512, scikit-image) and the same scenes, when installed.

    python benchmarks/align.py --threads 1 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up (model loading, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from idinvert_plugins.align import align_face, make_transform, paste_back
    from idinvert_plugins.align.aligners import DlibAligner
    from idinvert_plugins.toyfaces.aligner import TOYFACES, ToyFacesAligner
    from idinvert_plugins.toyfaces.scenes import random_scene

    photos = []
    for w, h in ((320, 240), (640, 480), (1280, 960)):
        k = w / 320
        photos.append((f"scene {w}x{h}", random_scene(3, (w, h), faces=2, side=(70 * k, 110 * k), angle=25,
                                                      resolution=256).image))
    try:
        from skimage import data

        photos.append(("astronaut 512x512", data.astronaut()))
    except ImportError:
        pass
    aligners = [ToyFacesAligner()]
    dlib = DlibAligner()
    if dlib.unavailable() is None:
        aligners.append(dlib)
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}, median of {args.repeats}")
    print("| aligner | photo | faces | detect ms | crop ms (256 px) | paste-back ms | total ms/photo |")
    print("|---|---|---|---|---|---|---|")
    for al in aligners:
        for name, photo in photos:
            if al.name == "toyfaces" and name.startswith("astronaut"):
                continue
            faces = al.detect(photo)
            if not faces:
                print(f"| {al.name} | {name} | 0 | - | - | - | - |")
                continue
            tf = make_transform(faces[0].landmarks, 256, (photo.shape[1], photo.shape[0]), TOYFACES)
            crop = align_face(photo, tf)
            detect = median_ms(lambda al=al, photo=photo: al.detect(photo), args.repeats)
            cut = median_ms(lambda photo=photo, tf=tf: align_face(photo, tf), args.repeats)
            paste = median_ms(lambda photo=photo, crop=crop, tf=tf: paste_back(photo, crop, tf), args.repeats)
            print(f"| {al.name} | {name} | {len(faces)} | {detect:.0f} | {cut:.0f} | {paste:.0f} | "
                  f"{detect + len(faces) * (cut + paste):.0f} |", flush=True)


if __name__ == "__main__":
    main()
