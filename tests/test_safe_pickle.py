"""The restricted unpickler: NVlabs-style ``.pkl`` files load (and convert) without executing their code,
pickles that reference code are refused with the global named, and rosinality ``train.py`` checkpoints
(which hold an ``argparse.Namespace``) load although ``torch.load(weights_only=True)`` refuses them."""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import pickle
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from idinvert_plugins.convert.nvlabs import NVlabsFormat
from idinvert_plugins.convert.rosinality import RosinalityFormat
from idinvert_plugins.convert.safe_pickle import (
    EasyDict,
    PersistentObject,
    RestrictedUnpickler,
    UnsafeCheckpointError,
    load_nvlabs_pkl,
    restricted_loads,
    safe_load,
)
from idinvert_plugins.models.stylegan2 import StyleGAN2Generator

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "reference"
NVLABS_BUFFERS = {"resample_filter", "noise_const", "w_avg"}


def _reference(family: str) -> Path:
    folder = REFERENCE / family
    if not folder.is_dir():
        pytest.skip(f"reference fixtures not found at {folder} (they live in ../shared next to the repo)")
    return folder


# -- a fake NVlabs code base whose functions leave a trace if they ever run ---------------------------------
FAKE_PERSISTENCE = '''
import pathlib

MARKER = {marker!r}


def _reconstruct_persistent_obj(meta):
    pathlib.Path(MARKER).write_text("NVlabs reconstruction code ran")
    raise RuntimeError("NVlabs code must never run")


class Persistent:
    """Pickles exactly like an NVlabs persistent_class instance."""

    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))
'''

FAKE_EASYDICT = '''
class EasyDict(dict):
    def __getattr__(self, name):
        return self[name]
'''


@pytest.fixture
def fake_nvlabs(tmp_path, monkeypatch):
    """Importable fake ``torch_utils.persistence`` and ``dnnlib.util`` modules (removed again afterwards)."""
    root = tmp_path / "fake_nvlabs"
    marker = tmp_path / "persistence_called"
    for package, module, source in (("torch_utils", "persistence", FAKE_PERSISTENCE.format(marker=str(marker))),
                                    ("dnnlib", "util", FAKE_EASYDICT)):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
        (root / package / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(root))
    names = ["torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"]
    assert not any(n in sys.modules for n in names)
    import dnnlib.util
    import torch_utils.persistence

    yield torch_utils.persistence, dnnlib.util, marker
    for name in names:
        sys.modules.pop(name, None)


def _persistent_tree(persistence, state_dict, class_name, init_kwargs, module_src):
    """Nested persistent objects (one per submodule) whose ``_parameters``/``_buffers``/``_modules`` hold the
    tensors of ``state_dict`` (dotted NVlabs keys), as NVlabs pickles its networks."""

    def node():
        return {"params": OrderedDict(), "buffers": OrderedDict(), "children": OrderedDict()}

    root = node()
    for key, value in state_dict.items():
        *path, leaf = key.split(".")
        n = root
        for part in path:
            n = n["children"].setdefault(part, node())
        if leaf in NVLABS_BUFFERS:
            n["buffers"][leaf] = value.clone()
        else:
            n["params"][leaf] = torch.nn.Parameter(value.clone())

    def build(n, name, kwargs):
        state = {
            "training": False,
            "_parameters": n["params"],
            "_buffers": n["buffers"],
            "_non_persistent_buffers_set": set(),
            "_forward_hooks": OrderedDict(),
            "_modules": OrderedDict((k, build(c, f"training.networks.{k}", {})) for k, c in n["children"].items()),
            "_init_args": (),
            "_init_kwargs": kwargs,
            "act_gain": np.float64(math.sqrt(2)),  # NVlabs layers keep numpy scalars in their __dict__
        }
        meta = {"type": "class", "version": 6, "module_src": module_src, "class_name": name, "state": state}
        return persistence.Persistent(meta)

    return build(root, class_name, init_kwargs)


def test_fake_nvlabs_pkl_loads_without_running_code_and_matches_reference(fake_nvlabs, tmp_path):
    persistence, util, marker = fake_nvlabs
    folder = _reference("nvlabs")
    sd = torch.load(folder / "nvlabs_stylegan2ada_64_G_ema_state_dict.pt", map_location="cpu", weights_only=True)
    meta = json.loads((folder / "nvlabs_stylegan2ada_64_meta.json").read_text())
    src_marker = tmp_path / "module_src_executed"
    module_src = f"import pathlib\npathlib.Path({str(src_marker)!r}).write_text('embedded source ran')\n"
    ik = meta["init_kwargs"]
    init_kwargs = util.EasyDict(ik, mapping_kwargs=util.EasyDict(ik["mapping_kwargs"]),
                                synthesis_kwargs=util.EasyDict(ik["synthesis_kwargs"]))
    disc_sd = {"b64.fromrgb.weight": torch.randn(8, 3, 1, 1), "b64.fromrgb.bias": torch.randn(8)}
    data = dict(
        training_set_kwargs=util.EasyDict(path="faces.zip", resolution=64, use_labels=False),
        G=_persistent_tree(persistence, sd, "training.networks.Generator", init_kwargs, module_src),
        D=_persistent_tree(persistence, disc_sd, "training.networks.Discriminator", util.EasyDict(), module_src),
        G_ema=_persistent_tree(persistence, sd, "training.networks.Generator", init_kwargs, module_src),
        augment_pipe=None,
    )
    path = tmp_path / "network-snapshot-000000.pkl"
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=4)
    raw = path.read_bytes()
    assert b"torch_utils.persistence" in raw and b"_reconstruct_persistent_obj" in raw and b"module_src" in raw

    # The fake NVlabs modules are importable right now: loading must still not call them.
    loaded = load_nvlabs_pkl(path)
    assert not marker.exists(), "torch_utils.persistence._reconstruct_persistent_obj was executed"
    assert not src_marker.exists(), "the embedded module_src was executed"

    assert set(loaded) == {"G", "D", "G_ema", "training_set_kwargs"}
    g = loaded["G_ema"]
    assert g["class_name"] == "training.networks.Generator"
    assert g["init_kwargs"] == ik and type(g["init_kwargs"]) is dict
    assert set(g["state_dict"]) == set(sd)
    assert all(torch.equal(g["state_dict"][k], v) for k, v in sd.items())
    assert all(type(v) is torch.Tensor and not v.requires_grad for v in g["state_dict"].values())
    assert set(loaded["D"]["state_dict"]) == set(disc_sd)
    assert loaded["training_set_kwargs"] == {"path": "faces.zip", "resolution": 64, "use_labels": False}
    raw_loaded = safe_load(path)
    assert isinstance(raw_loaded["G_ema"], PersistentObject) and isinstance(raw_loaded["training_set_kwargs"], EasyDict)
    assert raw_loaded["G_ema"]["state"]["_modules"]["synthesis"]["state"]["_modules"]["b4"]["class_name"] == (
        "training.networks.b4"
    )

    fmt = NVlabsFormat()
    assert fmt.sniff(loaded)
    (converted,) = fmt.convert(loaded)
    assert converted.args["conv_clamp"] == 256
    assert converted.notes["training_set_kwargs"]["path"] == "faces.zip"
    G = StyleGAN2Generator(**converted.args)
    G.load_state_dict(converted.state_dict, strict=True)
    G.eval()
    io_arrays = np.load(folder / "nvlabs_stylegan2ada_64_io.npz")
    with torch.no_grad():
        img = G.synthesis(torch.from_numpy(io_arrays["ws_plus"]), noise_mode="const")
        img_z = G(torch.from_numpy(io_arrays["z"]))
    assert (img - torch.from_numpy(io_arrays["image_from_ws_plus_const"])).abs().max() < 1e-4
    assert (img_z - torch.from_numpy(io_arrays["image_from_z_const"])).abs().max() < 1e-4


# -- refusing code ---------------------------------------------------------------------------------------------
class _Exploit:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("func", [os.system, eval], ids=["os.system", "builtins.eval"])
def test_pickles_referencing_code_are_refused(tmp_path, func):
    marker = tmp_path / "pwned"
    arg = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w')"
    payload = {"g_ema": {"input.input": torch.zeros(1)}, "evil": _Exploit(func, arg)}
    expected_global = f"{func.__module__}.{func.__name__}"  # posix.system on Linux, builtins.eval
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps(payload, protocol=4))
    pt = tmp_path / "evil.pt"
    torch.save(payload, pt)  # torch zip format: weights_only refuses it, then our unpickler must too
    for path in (pkl, pt):
        with pytest.raises(UnsafeCheckpointError, match=rf"refusing to load the global '{expected_global}'") as info:
            safe_load(path)
        assert "save the network's state_dict()" in str(info.value)
        assert isinstance(info.value, pickle.UnpicklingError)
        assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError, match=expected_global):
        load_nvlabs_pkl(pkl)


def test_allow_list_details():
    unpickler = RestrictedUnpickler(io.BytesIO(b""))
    # Real NVIDIA pkls were written with numpy 1.x; those names resolve to numpy 2's functions.
    assert unpickler.find_class("numpy.core.multiarray", "scalar") is unpickler.find_class(
        "numpy._core.multiarray", "scalar")
    assert unpickler.find_class("torch", "float16") is torch.float16
    for module, name in (("torch", "load"), ("builtins", "getattr"), ("numpy", "load"), ("subprocess", "Popen"),
                         ("torch_utils.persistence", "persistent_class"), ("dnnlib.util", "call_func_by_name")):
        with pytest.raises(UnsafeCheckpointError, match=rf"'{module}\.{name}'"):
            unpickler.find_class(module, name)
    with pytest.raises(UnsafeCheckpointError, match="_codecs.encode is only allowed"):
        restricted_loads(pickle.dumps(_Exploit(__import__("_codecs").encode, b"x")))
    # Protocol-2 pickles name Python 2 modules (__builtin__.set) and encode bytes with _codecs.encode.
    data = {"s": {1, 2}, "b": b"\x00\xff", "a": np.arange(3), "x": np.float32(0.5), "t": torch.arange(4)[1:]}
    for protocol in (2, 3, 4, 5):
        out = restricted_loads(pickle.dumps(data, protocol=protocol))
        assert out["s"] == {1, 2} and out["b"] == b"\x00\xff" and out["x"] == np.float32(0.5)
        assert np.array_equal(out["a"], np.arange(3)) and torch.equal(out["t"], torch.tensor([1, 2, 3]))


# -- rosinality train.py checkpoints -------------------------------------------------------------------------
def test_rosinality_train_checkpoint_with_namespace_loads_and_converts(tmp_path):
    folder = _reference("rosinality")
    ckpt = torch.load(folder / "rosinality_stylegan2_64.pt", map_location="cpu", weights_only=True)
    g_ema = ckpt["g_ema"]
    args = argparse.Namespace(path="lmdb", iter=800000, batch=16, size=64, r1=10.0, augment=False, arch="stylegan2")
    optim = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(2)}},
             "param_groups": [{"lr": 0.002, "betas": (0.0, 0.99), "params": [0]}]}
    train_ckpt = {"g": g_ema, "d": {"convs.0.0.weight": torch.randn(4, 3, 1, 1)}, "g_ema": g_ema,
                  "g_optim": optim, "d_optim": optim, "args": args, "ada_aug_p": 0.0}
    for zip_format in (True, False):
        path = tmp_path / f"{'zip' if zip_format else 'legacy'}_050000.pt"
        torch.save(train_ckpt, path, _use_new_zipfile_serialization=zip_format)
        with pytest.raises(pickle.UnpicklingError):  # why a safe loader is needed at all
            torch.load(path, map_location="cpu", weights_only=True)
        loaded = safe_load(path)
        assert isinstance(loaded["args"], dict) and loaded["args"]["size"] == 64 and loaded["args"].batch == 16
        assert torch.equal(loaded["g_ema"]["input.input"], g_ema["input.input"])
        assert loaded["g_optim"]["param_groups"][0]["betas"] == (0.0, 0.99)

    fmt = RosinalityFormat()
    assert fmt.sniff(loaded)
    (converted,) = fmt.convert(loaded)
    assert converted.notes["train_args"]["size"] == 64
    assert converted.notes["ignored_entries"] == ["ada_aug_p", "args", "d", "d_optim", "g", "g_optim"]
    assert "no latent_avg" in converted.notes["w_avg"]
    G = StyleGAN2Generator(**converted.args)
    G.load_state_dict(converted.state_dict, strict=True)
    io_arrays = np.load(folder / "rosinality_stylegan2_64_io.npz")
    with torch.no_grad():
        img = G.eval().synthesis(torch.from_numpy(io_arrays["wplus"]))
    assert (img - torch.from_numpy(io_arrays["image_from_wplus"])).abs().max() < 1e-4


def test_plain_state_dict_and_non_pickles(tmp_path):
    path = tmp_path / "sd.pth"
    torch.save(OrderedDict(a=torch.ones(2)), path)
    assert torch.equal(safe_load(path)["a"], torch.ones(2))
    bad = tmp_path / "junk.pkl"
    bad.write_text("definitely not a pickle")
    with pytest.raises(pickle.UnpicklingError, match="junk.pkl is not a checkpoint: it looks like a text file"):
        safe_load(bad)
    not_nvlabs = tmp_path / "plain.pkl"
    not_nvlabs.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="is not an NVlabs network pickle"):
        load_nvlabs_pkl(not_nvlabs)



def _not_checkpoints(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Files that are no checkpoint, each with what the error must say about it."""
    from PIL import Image

    out = {}
    (p := tmp_path / "notes.txt").write_text("hello world\n" * 20)
    out["text"] = (p, "it looks like a text file")
    Image.new("RGB", (8, 8)).save(p := tmp_path / "face.png")
    out["png"] = (p, "it looks like a PNG image")
    (p := tmp_path / "empty.safetensors").write_bytes(b"")
    out["empty safetensors"] = (p, "the file is empty (0 bytes")
    (p := tmp_path / "empty.pth").write_bytes(b"")
    out["empty pth"] = (p, "the file is empty (0 bytes")
    torch.save({"a": torch.randn(1000)}, full := tmp_path / "full.pth")
    (p := tmp_path / "cut.pth").write_bytes(full.read_bytes()[:2000])
    out["truncated zip"] = (p, "a zip archive (the torch.save format) truncated or damaged")
    (p := tmp_path / "cut.pkl").write_bytes(pickle.dumps({"a": list(range(100))})[:40])
    out["truncated pickle"] = (p, "it starts like a pickle but cannot be read (UnpicklingError")
    from safetensors.torch import save_file

    save_file({"a": torch.randn(100)}, str(st := tmp_path / "full.safetensors"))
    (p := tmp_path / "cut.safetensors").write_bytes(st.read_bytes()[:40])
    out["truncated safetensors"] = (p, "a safetensors file truncated to 40 bytes")
    (p := tmp_path / "memo.bin").write_bytes(b"\x80\x02h\x65.")  # a pickle that refers to a missing memo
    out["memo"] = (p, "cannot be read")
    return out


def test_files_that_are_not_checkpoints_get_a_clear_error_naming_the_file_and_the_formats(tmp_path, capsys):
    from idinvert_plugins.cli import main
    from idinvert_plugins.convert.safe_pickle import ACCEPTED_FORMATS, NotACheckpointError

    for label, (path, why) in _not_checkpoints(tmp_path).items():
        with pytest.raises(NotACheckpointError) as err:
            safe_load(path)
        assert str(err.value).startswith(f"{path} is not a checkpoint: ") and why in str(err.value), label
        assert ACCEPTED_FORMATS in str(err.value)
        # the CLI: one line, no traceback, exit status 2
        assert main(["convert", str(path), "-o", str(tmp_path / "out")]) == 2, label
        printed = capsys.readouterr().err
        assert printed.startswith(f"idinvert: error: {path} is not a checkpoint") and "Traceback" not in printed
        assert not (tmp_path / "out").exists()


def test_a_safetensors_state_dict_converts(tmp_path):
    from safetensors.torch import save_file

    from idinvert_plugins.convert import convert_checkpoint
    from idinvert_plugins.hub import load_encoder

    sys.path.insert(0, str(Path(__file__).parent))
    from test_genforce_convert import encoder_to_genforce, randomised

    from idinvert_plugins.models.idinvert_encoder import IDInvertEncoder

    E = randomised(IDInvertEncoder(resolution=16, num_layers=6, w_dim=4, channel_base=4))
    save_file({k: v.contiguous() for k, v in encoder_to_genforce(E).items()}, str(tmp_path / "enc.safetensors"))
    (folder,) = convert_checkpoint(tmp_path / "enc.safetensors", tmp_path / "enc")
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(load_encoder(folder)(x), E(x))
