"""Face alignment for real photos, and the way back: aligners (plugins that find faces and their landmarks),
FFHQ-style alignment that keeps its transform, and paste-back into the full-resolution photo.

* :mod:`.transform` - templates, the FFHQ quad, :class:`AlignTransform` (JSON), :func:`align_face`,
  :func:`paste_back`;
* :mod:`.base` - the :class:`Aligner` contract (hook ``register_aligners``), :class:`Face`, landmarks files;
* :mod:`.aligners` - the core's ``dlib`` (the ``[align]`` extra) and ``json`` aligners (a domain plugin brings
  the aligner and templates of its own images);
* :mod:`.photo` - the flow: :func:`align_photo`, :func:`paste_faces`, which aligner and template go with a
  generator (:func:`alignment_for`), templates by name (:func:`get_template`).

Example::

    from idinvert_plugins.align import align_photo, load_photo, paste_faces
    photo = load_photo("me.jpg")
    [face] = align_photo(photo, aligner="dlib", template="ffhq", size=256)
    ...  # invert and edit face.crop
    result, mask = paste_faces(photo, [edited_crop], [face.transform])
"""

from .base import Aligner, Face, NoFaceError, order_faces, parse_landmarks, read_landmarks
from .photo import (
    AlignedFace,
    align_photo,
    alignment_for,
    choose_faces,
    get_aligner,
    get_template,
    load_photo,
    paste_faces,
    template_names,
)
from .transform import (
    FFHQ,
    TEMPLATES,
    AlignTransform,
    Template,
    align_face,
    face_quad,
    fit_template,
    make_transform,
    paste_back,
    photo_mask,
    psnr,
)

__all__ = ["FFHQ", "TEMPLATES", "AlignTransform", "AlignedFace", "Aligner", "Face", "NoFaceError",
           "Template", "align_face", "align_photo", "alignment_for", "choose_faces", "face_quad", "fit_template",
           "get_aligner", "get_template", "load_photo", "make_transform", "order_faces", "parse_landmarks",
           "paste_back", "paste_faces", "photo_mask", "psnr", "read_landmarks", "template_names"]
