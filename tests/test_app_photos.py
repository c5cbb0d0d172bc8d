"""The app's photo flow (issue 16): an uploaded photo's faces are found, one is picked, its aligned crop is
inverted, and the result is pasted back into the full-size photo for download."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio", reason="the app needs gradio (the [demo] / [test] extra)")

from idinvert_plugins.align import photo_mask  # noqa: E402
from idinvert_plugins.app.models import ModelRegistry, ModelSpec  # noqa: E402
from idinvert_plugins.app.photos import PhotoError, find_faces, write_full_photo  # noqa: E402
from idinvert_plugins.app.session import invert_image  # noqa: E402
from idinvert_plugins.toyfaces.scenes import random_scene  # noqa: E402


@pytest.fixture(scope="module")
def bundle():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield ModelRegistry([ModelSpec("toyfaces-stylegan2-64")], include_bundled=False).get("toyfaces-stylegan2-64")
    torch.set_num_threads(threads)


def test_upload_pick_a_face_invert_and_download_the_full_size_photo(bundle, tmp_path):
    scene = random_scene(11, (420, 300), faces=2, side=(110, 170), angle=30, resolution=256)
    upload = tmp_path / "upload.png"
    Image.fromarray(scene.image).save(upload)
    photos = find_faces(bundle, str(upload))
    assert photos.aligner == "toyfaces" and [k for _, k in photos.choices()] == [0, 1]
    assert photos.preview().shape == (300, 420, 3)
    crop = photos.crop(1)
    assert crop.size == (64, 64)
    inversion = invert_image(bundle, crop, "encoder")
    assert inversion.mse < 0.1
    path = write_full_photo(photos, 1, inversion.image, tmp_path / "downloads")
    result = np.asarray(Image.open(path))
    assert result.shape == scene.image.shape
    mask = photo_mask(photos.faces[1].transform)
    assert np.array_equal(result[mask == 0], scene.image[mask == 0])
    assert np.abs(result.astype(int) - scene.image)[mask >= 0.99].mean() > 5
    with pytest.raises(PhotoError, match="no face 7"):
        photos.crop(7)


def test_a_photo_without_a_face_is_a_message(bundle, tmp_path):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((100, 140, 3), 128, np.uint8)).save(blank)
    with pytest.raises(PhotoError, match="no face found"):
        find_faces(bundle, str(blank))
    (tmp_path / "bad.png").write_text("nope")
    with pytest.raises(PhotoError, match="not an image file"):
        find_faces(bundle, str(tmp_path / "bad.png"))


def test_the_page_finds_faces_inverts_the_chosen_one_and_pastes_it_back(tmp_path):
    """Through the launched app (gradio_client, one session): find_faces on an upload, invert the crop it put in
    the input, paste_photo: a PNG of the photo's size, changed only inside the face's mask."""
    import torch
    from app_fixtures import free_port
    from gradio_client import Client, handle_file

    from idinvert_plugins.app import build_app

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    scene = random_scene(11, (420, 300), faces=2, side=(110, 170), angle=30, resolution=256)
    upload = tmp_path / "upload.png"
    Image.fromarray(scene.image).save(upload)
    demo = build_app([ModelSpec("toyfaces-stylegan2-64")], include_bundled=False)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        menu, preview, crop = client.predict("toyfaces-stylegan2-64", handle_file(str(upload)), True,
                                             api_name="/find_faces")
        assert [k for _, k in menu["choices"]] == [0, 1] and menu["value"] == 0
        assert np.asarray(Image.open(preview)).shape == (300, 420, 3)
        assert Image.open(crop).size == (64, 64)
        client.predict("toyfaces-stylegan2-64", handle_file(crop), "encoder", 0, api_name="/invert")
        full = client.predict(0, api_name="/paste_photo")  # face 0, whose crop was inverted
        result = np.asarray(Image.open(full).convert("RGB"))
        assert result.shape == scene.image.shape
        faces = find_faces(ModelRegistry([ModelSpec("toyfaces-stylegan2-64")], include_bundled=False)
                           .get("toyfaces-stylegan2-64"), str(upload))
        mask = photo_mask(faces.faces[0].transform)
        assert np.array_equal(result[mask == 0], scene.image[mask == 0])
        assert np.abs(result.astype(int) - scene.image)[mask >= 0.99].mean() > 5
    finally:
        demo.close()
        torch.set_num_threads(threads)
