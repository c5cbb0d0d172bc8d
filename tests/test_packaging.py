"""The wheel carries the bundled model cards and weights, so a plain `pip install` loads models by name."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "idinvert_plugins").rglob("__init__.py")}
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages in pyproject.toml"


@pytest.mark.slow
def test_installed_wheel_loads_bundled_models_by_name(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(REPO)], check=True, capture_output=True, timeout=300)
    wheel = next(wheels.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    cards = [n for n in names if n.startswith("idinvert_plugins/_bundled/model_cards/")]
    assert cards, "no model cards in the wheel"
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    py = env_dir / "bin" / "python"
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDINVERT_")}
    env["PYTHONPATH"] = str(target)  # shadows the editable checkout
    code = ("import idinvert_plugins as ip, idinvert_plugins.cards as c; "
            "m = ip.load_model('toyfaces-classifier-64'); "
            "print(ip.__file__); print(m.resolved.folder)")
    out = subprocess.run([str(py), "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    module_file, folder = out.stdout.strip().splitlines()
    assert module_file.startswith(str(target)) and folder.startswith(str(target / "idinvert_plugins" / "_bundled"))
