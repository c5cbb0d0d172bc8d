"""Face alignment that keeps its transform, and paste-back (idinvert_plugins.align.transform / base / photo):
FFHQ's quad, the transform's JSON and inverse, the resampling, the paste-back's untouched pixels, landmarks
files, the aligner registry and contract."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from idinvert_plugins.align import (
    FFHQ,
    AlignTransform,
    Face,
    Template,
    align_face,
    face_quad,
    fit_template,
    make_transform,
    parse_landmarks,
    paste_back,
    photo_mask,
    psnr,
)
from idinvert_plugins.align.base import Aligner, order_faces
from idinvert_plugins.align.transform import as_points
from idinvert_plugins.toyfaces import render, sample_attributes
from idinvert_plugins.toyfaces.aligner import TOYFACES
from idinvert_plugins.toyfaces.landmarks import landmark_array
from idinvert_plugins.toyfaces.scenes import Placement, place_faces, random_scene


def upright(d: float = 40.0, m: float = 36.0, centre=(100.0, 90.0)) -> np.ndarray:
    """Landmarks of an upright symmetric face: eye distance d, eye-to-mouth m, mouth 0.8 d wide."""
    cx, cy = centre
    return np.array([[cx - d / 2, cy], [cx + d / 2, cy], [cx - 0.4 * d, cy + m], [cx + 0.4 * d, cy + m]])


def test_ffhq_quad_of_an_upright_face_follows_the_published_formula():
    d, m = 40.0, 36.0  # 2 d = 80 > 1.8 m = 64.8: the eye term sets the size
    q = face_quad(upright(d, m), FFHQ)
    half = 2.0 * d
    c = np.array([100.0, 90.0 + 0.1 * m])
    np.testing.assert_allclose(q, [c + [-half, -half], c + [-half, half], c + [half, half], c + [half, -half]])
    # the mouth term wins for a long face, and the template's scale and shift apply
    q2 = face_quad(upright(20.0, 40.0), Template(scale=1.5, shift=0.0))
    np.testing.assert_allclose(np.hypot(*(q2[3] - q2[0])) / 2, 1.8 * 40.0 * 1.5)
    np.testing.assert_allclose(q2.mean(0), [100.0, 90.0])


def test_eyes_land_on_the_ffhq_template_positions_at_256():
    """For a face whose eye term sets the size, FFHQ alignment puts the eyes at x = 96 and 160 of 256 whatever
    the face's position, size and rotation in the photo."""
    lm = upright(30.0, 26.0, (0.0, 0.0))
    a = math.radians(27.0)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    moved = lm @ rot.T * 2.7 + [640.0, 410.0]
    tf = make_transform(moved, 256, (1280, 960), FFHQ)
    eyes = tf.to_crop(moved[:2])
    np.testing.assert_allclose(eyes[:, 0], [95.5, 159.5], atol=1e-6)  # pixel centres: x = 96 - 0.5, 160 - 0.5
    np.testing.assert_allclose(eyes[:, 1], 127.5 - 0.1 * 26.0 / (4 * 30.0) * 256, atol=1e-6)
    assert tf.angle == pytest.approx(27.0)
    assert tf.scale == pytest.approx(2.7 * 4 * 30.0 / 256)


def test_transform_inverse_and_json_round_trip(tmp_path):
    tf = make_transform(upright(), 64, (320, 200), TOYFACES, face=1, aligner="test", score=0.9)
    pts = np.array([[3.0, 4.0], [60.5, 10.25]])
    np.testing.assert_allclose(tf.to_crop(tf.to_photo(pts)), pts, atol=1e-9)
    path = tf.save(tmp_path / "t.json")
    data = json.loads(path.read_text())
    assert data["format"] == "idinvert-align-1" and data["size"] == 64 and data["photo_size"] == [320, 200]
    assert set(data["landmarks"]) == {"eye_left", "eye_right", "mouth_left", "mouth_right"}
    back = AlignTransform.load(path)
    np.testing.assert_allclose(back.crop_to_photo(), tf.crop_to_photo(), atol=1e-4)
    assert Template.from_dict(back.template) == TOYFACES and back.face == 1 and back.aligner == "test"
    (tmp_path / "bad.json").write_text('{"format": "something"}')
    with pytest.raises(ValueError, match="not an alignment transform"):
        AlignTransform.load(tmp_path / "bad.json")


def test_landmark_forms_and_errors():
    pts68 = np.zeros((68, 2))
    pts68[36:42] = [10.0, 20.0]
    pts68[42:48] = [30.0, 20.0]
    pts68[48], pts68[54] = [12.0, 40.0], [28.0, 40.0]
    np.testing.assert_allclose(as_points(pts68), [[10, 20], [30, 20], [12, 40], [28, 40]])
    five = [[10, 20], [30, 20], [20, 30], [12, 40], [28, 40]]
    np.testing.assert_allclose(as_points(five), [[10, 20], [30, 20], [12, 40], [28, 40]])
    with pytest.raises(ValueError, match="4 .*5 .*68"):
        as_points(np.zeros((7, 2)))
    with pytest.raises(ValueError, match="missing mouth_right"):
        as_points({"eye_left": [0, 0], "eye_right": [1, 0], "mouth_left": [0, 1]})
    with pytest.raises(ValueError, match="degenerate"):
        face_quad(np.zeros((4, 2)))
    faces = parse_landmarks({"faces": [{"eye_left": [1, 2], "eye_right": [9, 2], "mouth_left": [2, 9],
                                        "mouth_right": [8, 9], "score": 0.5}, {"points": five}]})
    assert len(faces) == 2 and faces[0].score == 0.5
    assert len(parse_landmarks(five)) == 1  # one face as a bare list of points
    with pytest.raises(ValueError, match="face 1"):
        parse_landmarks([five, [[1, 2]]])


def test_align_then_paste_back_reproduces_the_face_and_leaves_the_rest_exactly():
    scene = random_scene(5, (360, 280), faces=1, side=(150, 150), angle=20, resolution=256)
    lm = scene.landmarks[0]
    tf = make_transform(lm, 256, (360, 280), TOYFACES)
    crop = align_face(scene.image, tf)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    back, mask = paste_back(scene.image, crop, tf, return_mask=True)
    assert back.shape == scene.image.shape
    assert psnr(back, scene.image, mask > 0) >= 35.0
    assert np.array_equal(back[mask == 0], scene.image[mask == 0])
    np.testing.assert_allclose(photo_mask(tf), mask)
    # an edit (here: inverted colours) changes the face region, nothing outside the mask
    edited = paste_back(scene.image, 255 - crop, tf)
    assert np.abs(edited.astype(int) - scene.image)[mask > 0.5].mean() > 50
    assert np.array_equal(edited[mask == 0], scene.image[mask == 0])
    # the mask is feathered: values strictly between 0 and 1 on a ring, 1 in the middle of the face
    assert ((mask > 0.05) & (mask < 0.95)).sum() > 500
    c = np.round(lm.mean(0)).astype(int)
    assert mask[c[1], c[0]] == 1.0


def test_a_small_crop_of_a_large_face_is_prefiltered_not_aliased():
    """Downscaling by ~6x: the crop equals the face rendered directly at the small size, up to blur."""
    attrs = sample_attributes(0, 7)
    big, lm = render(attrs, 256), landmark_array(attrs, 256)
    tf = make_transform(lm, 64, (256, 256), TOYFACES)
    crop = align_face(big, tf)
    small = align_face(render(attrs, 64), make_transform(landmark_array(attrs, 64), 64, (64, 64), TOYFACES))
    assert psnr(crop, small) > 24.0


def test_faces_at_the_border_are_reflect_padded():
    attrs = sample_attributes(0, 3)
    face, lm = render(attrs, 128), landmark_array(attrs, 128)
    backdrop = np.full((200, 300, 3), 90, np.uint8)
    image, lms = place_faces(backdrop, [face], [Placement(20.0, 100.0, 128.0, 0.0)], [lm])
    tf = make_transform(lms[0], 64, (300, 200), TOYFACES)
    assert tf.quad[:, 0].min() < 0  # the quad leaves the photo on the left
    crop = align_face(image, tf)
    left = crop[:, :8].astype(float)
    assert left.std() < 40  # no hard black border: reflected, blurred, median-blended content


def test_fit_template_recovers_the_toyfaces_numbers():
    lms = [landmark_array(sample_attributes(0, i), 64) for i in range(200)]
    t = fit_template(lms, 64, name="fitted")
    assert t.scale == pytest.approx(TOYFACES.scale, abs=0.03)
    assert t.shift == pytest.approx(TOYFACES.shift, abs=0.03)
    with pytest.raises(ValueError, match="mask ellipse must lie inside"):
        Template(mask_center=(0.5, 0.5), mask_radii=(0.6, 0.4))


def test_faces_are_ordered_largest_first_then_left_to_right():
    small = Face(upright(10, 10, (50, 50)))
    big = Face(upright(40, 40, (300, 50)))
    twin = Face(upright(10, 10, (10, 50)))
    assert order_faces([small, big, twin]) == [big, twin, small]


def test_toyface_landmarks_sit_on_the_painted_features():
    """The eye centre is inside the painted eye (the eye white, iris and pupil are far from skin colour) and the
    four points keep their order and proportions."""
    for i in range(5):
        attrs = sample_attributes(0, i)
        img = render(attrs, 256).astype(int)
        lm = landmark_array(attrs, 256)
        assert lm[0, 0] < lm[1, 0] and lm[2, 0] < lm[3, 0] and lm[2:, 1].min() > lm[:2, 1].max()
        d = np.hypot(*(lm[1] - lm[0]))
        assert 35 < d < 60
        for x, y in lm[:2]:
            x, y = int(round(x)), int(round(y))
            cheek = img[y + int(0.35 * d), x]  # skin below the eye
            assert np.abs(img[y, x] - cheek).sum() > 60


def test_aligner_contract_is_enforced_at_registration():
    import idinvert_plugins
    from idinvert_plugins.plugins import Plugins

    class NotAnAligner:
        name = "fake"

    class Centre(Aligner):
        name = "centre-test"
        description = "one face in the middle"

        def detect(self, photo, *, source=None):
            h, w = photo.shape[:2]
            return [Face(upright(w / 4, w / 4, (w / 2, h / 2)))]

    class Plugin:
        @idinvert_plugins.hookimpl
        def register_aligners(self, register):
            register(Centre())

    class Bad:
        @idinvert_plugins.hookimpl
        def register_aligners(self, register):
            register(NotAnAligner())

    plugins = Plugins(plugins_dirs=[], load_entry_points=False)
    plugins._register(Plugin(), "centre-plugin", "test")
    plugins._register(Bad(), "bad-plugin", "test")
    plugins._build_registry()
    assert isinstance(plugins.get("aligner", "centre-test"), Centre)
    assert {"dlib", "toyfaces", "json"} <= set(plugins.names("aligner"))
    assert any(p.plugin == "bad-plugin" and "Aligner" in p.message for p in plugins.problems)


PLUGIN = '''
import idinvert_plugins
from idinvert_plugins.align import Aligner, Face


class Centre(Aligner):
    name = "centre"
    description = "assumes one upright face in the middle of the photo"

    def detect(self, photo, *, source=None):
        h, w = photo.shape[:2]
        s = min(h, w)
        cx, cy = w / 2, h / 2
        return [Face([[cx - 0.15 * s, cy - 0.05 * s], [cx + 0.15 * s, cy - 0.05 * s],
                      [cx - 0.1 * s, cy + 0.2 * s], [cx + 0.1 * s, cy + 0.2 * s]])]


class NeedsSomething(Aligner):
    name = "needs-something"
    description = "an aligner whose package is missing"

    def unavailable(self):
        return "pip install something-missing"


@idinvert_plugins.hookimpl
def register_aligners(register):
    register(Centre())
    register(NeedsSomething())
'''


def test_an_aligner_plugin_runs_from_the_command_line(tmp_path, capsys):
    """The hookspec's example aligner, as a one-file plugin: listed by `idinvert plugins` (one that cannot run
    says what to install), and `idinvert align --aligner centre` uses it."""
    from idinvert_plugins.cli import main

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "centre.py").write_text(PLUGIN)
    photo = tmp_path / "p.png"
    from PIL import Image

    Image.fromarray(np.full((120, 200, 3), 100, np.uint8)).save(photo)
    assert main(["--plugins-dir", str(plugins), "plugins"]) == 0
    text = capsys.readouterr().out
    assert "centre " in text and "not available here: pip install something-missing" in text
    out = tmp_path / "out"
    assert main(["--plugins-dir", str(plugins), "align", str(photo), "--aligner", "centre", "--template", "ffhq",
                 "--size", "32", "-o", str(out)]) == 0
    tf = AlignTransform.load(out / "p_0.json")
    assert tf.aligner == "centre" and tf.size == 32 and tf.photo_size == (200, 120)
    assert main(["--plugins-dir", str(plugins), "align", str(photo), "--aligner", "needs-something", "-o",
                 str(out)]) == 2
    assert "pip install something-missing" in capsys.readouterr().err
