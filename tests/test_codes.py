"""W+ code files (idinvert_plugins.codes): the format every writer and reader shares."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_stylegan2
from safetensors import safe_open
from safetensors.torch import save_file

from idinvert_plugins.codes import is_code_file, load_code, save_code


def test_round_trip_with_metadata(tmp_path):
    G = tiny_stylegan2()
    code = torch.randn(1, G.num_layers, G.w_dim)
    path = save_code(code, tmp_path / "sub" / "a.safetensors", generator="tiny", method="idinvert", steps=3)
    with safe_open(str(path), framework="pt") as f:
        assert list(f.keys()) == ["code"] and f.get_tensor("code").shape == (G.num_layers, G.w_dim)
        assert f.metadata() == {"space": "wp", "generator": "tiny", "method": "idinvert", "steps": "3"}
    assert torch.equal(load_code(path, G), code[0])
    assert is_code_file(path) and not is_code_file(tmp_path / "a.png")


def test_w_codes_are_broadcast_to_every_layer(tmp_path):
    G = tiny_stylegan2()
    w = torch.randn(G.w_dim)
    for i, stored in enumerate((w, w[None], w[None, None])):
        save_file({"code": stored.contiguous()}, str(tmp_path / f"w{i}.safetensors"))
        assert torch.equal(load_code(tmp_path / f"w{i}.safetensors", G), w.expand(G.num_layers, -1))


def test_bad_code_files_say_what_is_wrong(tmp_path):
    G = tiny_stylegan2()
    with pytest.raises(ValueError, match="no such code file"):
        load_code(tmp_path / "missing.safetensors", G)
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="is not a safetensors code file"):
        load_code(tmp_path / "junk.safetensors", G)
    save_file({"codes": torch.zeros(2, G.num_layers, G.w_dim)}, str(tmp_path / "cache.safetensors"))
    with pytest.raises(ValueError, match=r"has no 'code' tensor \(found \['codes'\]\)"):
        load_code(tmp_path / "cache.safetensors", G)
    save_code(torch.zeros(G.num_layers, G.w_dim + 1), tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match=rf"is \[{G.num_layers}, {G.w_dim + 1}\] but this generator needs W\+"):
        load_code(tmp_path / "other.safetensors", G)
    with pytest.raises(ValueError, match="holds one W\\+ code"):
        save_code(torch.zeros(2, G.num_layers, G.w_dim), tmp_path / "two.safetensors")
