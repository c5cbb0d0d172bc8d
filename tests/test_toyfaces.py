"""Tests of the toy-faces renderer (idinvert_plugins.data.toyfaces) and the datasets over it (folders)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from idinvert_plugins.data import folders
from idinvert_plugins.data import toyfaces as tf
from idinvert_plugins.data.folders import ImageFolderDataset, image_to_tensor
from idinvert_plugins.toyfaces.stream import ToyFacesStream

SEED = 11


def frontal(**changes) -> dict:
    """A face with pose and framing fixed, so the rows of its features are known at 64x64: eye band
    around row 31 (glasses rows ~26-36), mouth around row 44, hair above row 20."""
    attrs = tf.sample_attributes(SEED, 3)
    attrs.update(yaw=0.0, roll=0.0, head_x=0.0, head_y=0.0, head_scale=0.0, face_height=0.5, face_width=0.5,
                 smile=0.0, eyeglasses=0, hair_style="short", hair_length=0.5, hair_color="brown", age=0.2,
                 glasses_color="black", lens_tint=0.3, skin_tone=0.3)
    attrs.update(changes)
    return attrs


def changed_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.nonzero((a != b).any(axis=(1, 2)))[0]


# -- determinism ----------------------------------------------------------------------------------------
def test_same_seed_and_index_render_identical_bytes_in_any_order():
    image, attrs = tf.render_index(SEED, 7)
    again, attrs_again = tf.render_index(SEED, 7)
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    assert image.tobytes() == again.tobytes() and attrs == attrs_again

    forward, arrays = tf.render_batch(SEED, [2, 7, 5])
    backward, arrays_back = tf.render_batch(SEED, [5, 7, 2])
    assert forward.shape == (3, 64, 64, 3) and forward.dtype == np.uint8
    assert forward[1].tobytes() == image.tobytes()
    assert forward[::-1].tobytes() == backward.tobytes()
    assert arrays["smile"][1] == attrs["smile"] and arrays_back["smile"][1] == attrs["smile"]
    for k, index in enumerate([2, 7, 5]):
        assert tf.render(tf.attributes_from_arrays(arrays, k)).tobytes() == forward[k].tobytes()
        assert tf.attributes_from_arrays(arrays, k) == tf.sample_attributes(SEED, index)


def test_different_seeds_and_indices_differ():
    a, attrs_a = tf.render_index(0, 1)
    b, attrs_b = tf.render_index(1, 1)
    c, _ = tf.render_index(0, 2)
    assert attrs_a != attrs_b
    assert np.abs(a.astype(int) - b).mean() > 10 and np.abs(a.astype(int) - c).mean() > 10


def test_bad_arguments_are_reported():
    with pytest.raises(ValueError, match="power of two from 16 to 256"):
        tf.render(tf.sample_attributes(0, 0), resolution=48)
    with pytest.raises(ValueError, match="non-negative"):
        tf.sample_attributes(-1, 0)
    attrs = tf.sample_attributes(0, 0)
    del attrs["smile"], attrs["texture_seed"]
    with pytest.raises(KeyError, match="smile, texture_seed"):
        tf.render(attrs)
    with pytest.raises(ValueError, match="'purple' is not a class of 'hair_color'"):
        tf.render(frontal(hair_color="purple"))


@pytest.mark.parametrize("resolution", [16, 32, 128, 256])
def test_every_resolution_renders_the_same_face(resolution):
    big = tf.render(frontal(), resolution).astype(np.float32)
    small = tf.render(frontal(), 64).astype(np.float32)
    # box-downsampling either one to 16x16 gives nearly the same picture (grain and edges aside)
    def to16(x):
        f = x.shape[0] // 16
        return x.reshape(16, f, 16, f, 3).mean(axis=(1, 3))
    assert big.shape == (resolution, resolution, 3)
    assert np.abs(to16(big) - to16(small)).mean() < 6.0  # grain alone gives ~2 at 16x16


# -- attributes -------------------------------------------------------------------------------------------
def test_attribute_spec_covers_every_sampled_value():
    names = [s.name for s in tf.ATTRIBUTES]
    assert len(names) == len(set(names))
    for required in ("smile", "eyeglasses", "hair_color", "hair_style", "skin_tone", "face_width", "yaw",
                     "age", "background", "background_hue", "light_x", "eye_color", "eyebrow_arch",
                     "mouth_width"):
        assert required in names
    attrs = tf.sample_attributes(SEED, 0)
    assert list(attrs) == names + ["texture_seed"]
    for spec in tf.ATTRIBUTES:
        value = attrs[spec.name]
        if spec.kind == "categorical":
            assert value in spec.classes
        elif spec.kind == "binary":
            assert value in (0, 1)
        else:
            assert spec.values[0] <= value <= spec.values[1]
    assert tf.ATTRIBUTE_SPECS["hair_color"].classes == ("black", "brown", "blond", "red", "auburn")
    with pytest.raises(AttributeError, match="'smile' is continuous"):
        tf.ATTRIBUTE_SPECS["smile"].classes  # noqa: B018


def test_attribute_marginals_over_500_faces():
    rows = [tf.sample_attributes(SEED, i) for i in range(500)]
    arrays = tf.attributes_to_arrays(rows)
    assert 0.24 < arrays["eyeglasses"].mean() < 0.36
    assert arrays["smile"].min() >= -1 and arrays["smile"].max() <= 1 and abs(arrays["smile"].mean()) < 0.1
    assert 0.4 < (arrays["yaw"] > 0).mean() < 0.6
    assert 0.4 < (arrays["age"] > 0.5).mean() < 0.6
    for name in ("skin_tone", "face_width", "age", "background_hue"):
        assert 0.0 <= arrays[name].min() < 0.05 and 0.95 < arrays[name].max() <= 1.0
    for name in ("hair_color", "hair_style", "background", "eye_color"):
        counts = np.bincount(arrays[name], minlength=len(tf.ATTRIBUTE_SPECS[name].classes))
        assert counts.min() >= 25, (name, counts)
    assert arrays["hair_color"].dtype == np.int64 and arrays["smile"].dtype == np.float64
    # the background bin is the nearest of six hues
    nearest = np.round(arrays["background_hue"] * 6).astype(int) % 6
    assert (nearest == arrays["background"]).all()
    assert len(set(arrays["texture_seed"].tolist())) == 500


def test_binary_labels():
    assert tf.binary_label("smile", 0.2) == 1 and tf.binary_label("smile", -0.1) == 0
    assert tf.binary_label("yaw", 0.3) == 1 and tf.binary_label("age", 0.4) == 0
    assert tf.binary_label("eyeglasses", 1) == 1
    labels = tf.binary_label("age", np.array([0.1, 0.6, 0.9]))
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1, 1]
    assert tf.binary_label("hair_color", np.array([2, 0, 2]), positive="blond").tolist() == [1, 0, 1]
    assert tf.binary_label("hair_style", "bald", positive="bald") == 1
    with pytest.raises(ValueError, match="categorical: pass positive="):
        tf.binary_label("hair_color", "blond")
    with pytest.raises(ValueError, match="only applies to categorical"):
        tf.binary_label("smile", 0.5, positive="yes")
    with pytest.raises(KeyError, match="unknown attribute 'beard'"):
        tf.binary_label("beard", 1)


# -- each attribute shows where it should --------------------------------------------------------------
def test_eyeglasses_change_the_eye_band_only():
    without, with_glasses = tf.render(frontal(eyeglasses=0)), tf.render(frontal(eyeglasses=1))
    rows = changed_rows(without, with_glasses)
    assert rows.size > 0 and rows.min() >= 24 and rows.max() <= 38, rows
    band = np.abs(without[26:37].astype(int) - with_glasses[26:37]).sum(axis=2)
    assert (band > 60).sum() > 40  # dark frames over skin: many clearly changed pixels
    assert without[40:].tobytes() == with_glasses[40:].tobytes()  # mouth, chin, neck untouched


def test_smile_changes_the_mouth_not_the_hair_or_background():
    frown, smile = tf.render(frontal(smile=-0.9)), tf.render(frontal(smile=0.9))
    mouth = np.abs(frown[39:50, 20:44].astype(int) - smile[39:50, 20:44]).sum(axis=2)
    assert (mouth > 60).sum() > 15
    assert frown[:22].tobytes() == smile[:22].tobytes()  # hair and forehead
    assert frown[:, :8].tobytes() == smile[:, :8].tobytes()  # background at the side
    assert tf.binary_label("smile", 0.9) == 1 and tf.binary_label("smile", -0.9) == 0


def test_hair_colour_changes_the_hair():
    black, blond = tf.render(frontal(hair_color="black")), tf.render(frontal(hair_color="blond"))
    hair = np.abs(black[10:18, 24:40].astype(int) - blond[10:18, 24:40]).mean()
    assert hair > 60
    assert black[40:].tobytes() == blond[40:].tobytes()  # below the ears nothing changes (short hair)
    assert black[10:18].mean() + 30 < blond[10:18].mean()


def test_every_semantic_attribute_is_visible_at_64():
    extremes = {"smile": (-1.0, 1.0), "yaw": (-1.0, 1.0), "age": (0.0, 1.0), "skin_tone": (0.0, 1.0),
                "face_width": (0.0, 1.0), "hair_style": ("bald", "long"), "hair_length": (0.0, 1.0),
                "background_hue": (0.0, 0.5), "eyeglasses": (0, 1), "hair_color": ("black", "blond")}
    for name, (lo, hi) in extremes.items():
        a, b = tf.render(frontal(**{name: lo})), tf.render(frontal(**{name: hi}))
        changed = (np.abs(a.astype(int) - b).sum(axis=2) > 45).sum()
        assert changed > 30, (name, changed)


# -- splits -------------------------------------------------------------------------------------------
def test_ffhq_split_protocol():
    assert tf.split_sizes(70000) == {"train": 65000, "test": 5000}
    assert tf.split_of(0, 70000) == "train" and tf.split_of(64999, 70000) == "train"
    assert tf.split_of(65000, 70000) == "test" and tf.split_of(69999, 70000) == "test"
    assert tf.split_sizes(700) == {"train": 650, "test": 50}
    assert tf.split_sizes(20) == {"train": 19, "test": 1}
    assert [tf.split_of(i, 20) for i in (18, 19)] == ["train", "test"]
    assert tf.split_sizes(1) == {"train": 0, "test": 1}
    with pytest.raises(IndexError, match="index 20 outside a dataset of 20"):
        tf.split_of(20, 20)
    with pytest.raises(ValueError, match="at least one image"):
        tf.split_sizes(0)


# -- files on disk ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    return tf.render_dataset(tmp_path_factory.mktemp("toy") / "set", n=20, seed=SEED, resolution=32,
                             progress=False)


def test_render_dataset_writes_images_csv_and_json(rendered):
    files = sorted((rendered / "images").glob("*.png"))
    assert [f.name for f in files] == [f"{i:05d}.png" for i in range(20)]
    for i in (0, 13, 19):
        decoded = np.asarray(Image.open(files[i]))
        assert decoded.shape == (32, 32, 3)
        assert decoded.tobytes() == tf.render_index(SEED, i, 32)[0].tobytes()

    rows = tf.read_attributes_csv(rendered / "attributes.csv")
    assert len(rows) == 20
    with open(rendered / "attributes.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header[:3] == ["index", "file", "split"]
    assert header[3:] == [s.name for s in tf.ATTRIBUTES] + ["texture_seed"]
    for i, row in enumerate(rows):
        assert (row.pop("index"), row.pop("file")) == (i, f"images/{i:05d}.png")
        assert row.pop("split") == tf.split_of(i, 20)
        assert row == tf.sample_attributes(SEED, i)  # exact round trip, floats included

    meta = json.loads((rendered / "dataset.json").read_text())
    assert meta["seed"] == SEED and meta["n"] == 20 and meta["resolution"] == 32
    assert meta["format_version"] == tf.FORMAT_VERSION
    assert meta["splits"] == {"train": 19, "test": 1}
    assert [a["name"] for a in meta["attributes"]] == [s.name for s in tf.ATTRIBUTES]
    assert meta["attributes"][2]["values"] == list(tf.HAIR_COLORS)


def test_render_dataset_with_worker_processes_matches(tmp_path):
    out = tf.render_dataset(tmp_path / "mp", n=6, seed=SEED, resolution=16, workers=2, progress=False)
    for i in range(6):
        assert np.asarray(Image.open(out / "images" / f"{i:05d}.png")).tobytes() == \
            tf.render_index(SEED, i, 16)[0].tobytes()
    assert [r["index"] for r in tf.read_attributes_csv(out / "attributes.csv")] == list(range(6))


def test_render_ood_writes_every_kind(tmp_path):
    out = tf.render_ood(tmp_path / "ood", n=14, seed=3, resolution=32, progress=False)
    rows = tf.read_attributes_csv(out / "attributes.csv")
    assert len(rows) == 14 and {r["split"] for r in rows} == {"ood"}
    assert sorted(r["ood_kind"] for r in rows) == sorted(tf.OOD_KINDS * 2)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["kind"] == "ood" and meta["ood_kinds"] == list(tf.OOD_KINDS)
    for row in rows:
        index = row.pop("index")
        row.pop("file"), row.pop("split")
        assert row == tf.sample_ood_attributes(3, index)
        image = np.asarray(Image.open(out / "images" / f"{index:05d}.png"))
        assert image.tobytes() == tf.render(row, 32).tobytes()
        kind = row["ood_kind"]
        if kind.startswith("occluder_"):
            assert row["occluder"] == kind.split("_", 1)[1]
            clear = tf.render({**row, "occluder": "none"}, 32).astype(int)
            assert np.abs(clear - image).sum(axis=2).max() > 60
        if kind == "extreme_attributes":
            outside = [s.name for s in tf.ATTRIBUTES
                       if s.kind == "continuous" and not s.values[0] <= row[s.name] <= s.values[1]]
            assert len(outside) == 2
        if kind == "head_shape":
            assert row["head_shape"] in tf.HEAD_SHAPES[1:]


# -- torch datasets ---------------------------------------------------------------------------------------
def test_image_folder_dataset_over_a_rendered_folder(rendered):
    ds = ImageFolderDataset(rendered)
    assert len(ds) == 20 and ds.meta["seed"] == SEED
    image, position = ds[13]
    assert position == 13 and image.dtype == torch.float32 and image.shape == (3, 32, 32)
    assert -1.0 <= image.min() and image.max() <= 1.0
    expected = tf.render_index(SEED, 13, 32)[0]
    assert torch.equal(image, torch.from_numpy(expected).permute(2, 0, 1).float() / 127.5 - 1.0)
    assert ds.attributes["smile"][13] == tf.sample_attributes(SEED, 13)["smile"]
    assert tf.HAIR_COLORS[ds.attributes["hair_color"][13]] == tf.sample_attributes(SEED, 13)["hair_color"]
    assert all(len(v) == 20 for v in ds.attributes.values())

    test = ImageFolderDataset(rendered, split="test")
    train = ImageFolderDataset(rendered, split="train")
    assert len(test) == 1 and len(train) == 19
    assert test.attributes["index"].tolist() == [19] and test[0][1] == 0
    assert torch.equal(test[0][0], ds[19][0])
    with pytest.raises(ValueError, match="no images with split='val'.*splits present: test, train"):
        ImageFolderDataset(rendered, split="val")
    with pytest.raises(IndexError, match="out of range"):
        train[19]


def test_image_folder_dataset_over_plain_images(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.new("RGB", (40, 30), (255, 0, 0)).save(tmp_path / "a" / "x.png")
    Image.new("L", (16, 16), 0).save(tmp_path / "a" / "b" / "y.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    ds = ImageFolderDataset(tmp_path, resolution=16)
    assert len(ds) == 2 and ds.attributes == {}
    assert [p.name for p in ds.files] == ["y.jpg", "x.png"]  # sorted by path: a/b/y.jpg, a/x.png
    black, _ = ds[0]
    red, _ = ds[1]
    assert red.shape == black.shape == (3, 16, 16)
    assert torch.allclose(red[0], torch.ones(16, 16)) and torch.allclose(red[1], -torch.ones(16, 16))
    assert torch.allclose(black, -torch.ones(3, 16, 16))
    with pytest.raises(ValueError, match="needs an attributes.csv"):
        ImageFolderDataset(tmp_path, split="train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolderDataset(tmp_path / "empty")


def test_toy_faces_stream_yields_rendered_faces():
    stream = ToyFacesStream(seed=SEED, start=5, stop=9, resolution=16)
    items = list(stream)
    assert [i for _, i in items] == [5, 6, 7, 8] and len(stream) == 4
    for image, index in items:
        assert image.shape == (3, 16, 16) and image.dtype == torch.float32
        assert -1.0 <= image.min() and image.max() <= 1.0
        assert torch.equal(image, image_to_tensor(tf.render_index(SEED, index, 16)[0]))
    image, index, attrs = next(iter(ToyFacesStream(SEED, 5, 6, resolution=16, with_attributes=True)))
    assert index == 5 and attrs["smile"] == tf.sample_attributes(SEED, 5)["smile"]
    assert tf.HAIR_STYLES[attrs["hair_style"]] == tf.sample_attributes(SEED, 5)["hair_style"]

    infinite = iter(ToyFacesStream(SEED, resolution=16))
    assert [next(infinite)[1] for _ in range(3)] == [0, 1, 2]
    with pytest.raises(TypeError, match="no length"):
        len(ToyFacesStream(SEED))
    with pytest.raises(ValueError, match="shuffle=True needs a finite range"):
        ToyFacesStream(SEED, shuffle=True)

    train, test = ToyFacesStream.from_split(70000, "train"), ToyFacesStream.from_split(70000, "test")
    assert (train.start, train.stop, test.start, test.stop) == (0, 65000, 65000, 70000)


def test_stream_sharding_is_disjoint_and_complete(monkeypatch):
    class Worker:
        def __init__(self, id, num_workers):
            self.id, self.num_workers = id, num_workers

    def shard_indices(rank, worker, workers=3, shuffle=False, epoch=0):
        monkeypatch.setattr(folders, "get_worker_info", lambda: Worker(worker, workers))
        stream = ToyFacesStream(SEED, 10, 33, resolution=16, shuffle=shuffle, rank=rank, world_size=2)
        stream.set_epoch(epoch)
        return list(stream.indices())

    for shuffle in (False, True):
        shards = [shard_indices(r, w, shuffle=shuffle) for r in range(2) for w in range(3)]
        everything = sorted(i for s in shards for i in s)
        assert everything == list(range(10, 33))  # each index exactly once
        sizes = [len(s) for s in shards]
        assert max(sizes) - min(sizes) <= 1
        per_rank = [sum(sizes[:3]), sum(sizes[3:])]
        monkeypatch.setattr(folders, "get_worker_info", lambda: None)
        assert per_rank == [len(ToyFacesStream(SEED, 10, 33, rank=r, world_size=2)) for r in range(2)]
    assert shard_indices(0, 0, shuffle=True, epoch=0) != shard_indices(0, 0, shuffle=True, epoch=1)

    # an infinite stream's shards interleave without overlap
    monkeypatch.setattr(folders, "get_worker_info", lambda: Worker(1, 2))
    it = ToyFacesStream(SEED, rank=1, world_size=2).indices()
    assert [next(it) for _ in range(3)] == [3, 7, 11]


def test_stream_in_a_multiprocess_dataloader():
    stream = ToyFacesStream(SEED, 0, 10, resolution=16)
    loader = torch.utils.data.DataLoader(stream, batch_size=4, num_workers=2)
    batches = list(loader)
    indices = sorted(i for _, idx in batches for i in idx.tolist())
    assert indices == list(range(10))
    assert all(images.shape[1:] == (3, 16, 16) for images, _ in batches)
