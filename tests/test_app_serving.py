"""Where the app listens (issue 16): ``--host`` / ``--port``, else Gradio's ``GRADIO_SERVER_NAME`` /
``GRADIO_SERVER_PORT`` (Spaces and hosting scripts set them), else 127.0.0.1 and the first free port from 7860; a
port that was asked for and is taken ends the command with one line naming ``--port``, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

pytest.importorskip("gradio", reason="the app needs gradio (the [demo] / [test] extra)")
from app_fixtures import free_port, make_tiny_model  # noqa: E402
from conftest import REPO  # noqa: E402

from idinvert_plugins.app import launcher  # noqa: E402
from idinvert_plugins.app.launcher import PortInUseError, server_address  # noqa: E402


@pytest.fixture
def busy_port():
    """A port with a listening socket on 127.0.0.1."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    yield s.getsockname()[1]
    s.close()


def test_options_win_then_gradio_variables_then_defaults():
    port = free_port()
    env = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": str(port)}
    assert server_address(environ=env) == ("0.0.0.0", port)
    other = free_port()
    assert server_address("127.0.0.1", other, environ=env) == ("127.0.0.1", other)
    host, chosen = server_address(environ={})
    assert host == "127.0.0.1" and launcher.DEFAULT_PORT <= chosen < launcher.DEFAULT_PORT + launcher.PORT_TRIES
    with pytest.raises(ValueError, match="GRADIO_SERVER_PORT='abc' is not a port number"):
        server_address(environ={"GRADIO_SERVER_PORT": "abc"})


def test_a_busy_default_port_falls_back_to_the_next_free_one(busy_port, monkeypatch):
    monkeypatch.setattr(launcher, "DEFAULT_PORT", busy_port)
    host, port = server_address(environ={})
    assert port > busy_port and port < busy_port + launcher.PORT_TRIES


def test_a_busy_port_that_was_asked_for_is_one_line_naming_port(busy_port):
    with pytest.raises(PortInUseError) as exc:
        server_address(port=busy_port, environ={})
    message = str(exc.value)
    assert "\n" not in message and f"port {busy_port}" in message and "--port" in message
    with pytest.raises(PortInUseError, match=f"GRADIO_SERVER_PORT={busy_port}.*--port"):
        server_address(environ={"GRADIO_SERVER_PORT": str(busy_port)})


def test_gradio_app_py_on_a_busy_port_exits_with_one_line(busy_port):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "gradio_app.py"), "--port", str(busy_port)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    [line] = proc.stderr.strip().splitlines()
    assert f"port {busy_port}" in line and "--port" in line


def test_idinvert_app_honours_gradio_server_port(tmp_path, capsys, monkeypatch, busy_port):
    """The variable is used when --port is not given (here: taken, so the one-line error names it)."""
    from idinvert_plugins.cli import main

    monkeypatch.setenv("GRADIO_SERVER_PORT", str(busy_port))
    assert main(["app"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"GRADIO_SERVER_PORT={busy_port}" in err and "--port" in err and len(err.splitlines()) == 1


def test_launched_app_listens_where_the_gradio_variables_say(tmp_path):
    import urllib.request

    model = make_tiny_model(tmp_path)
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_SERVER_NAME": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, str(REPO / "gradio_app.py"), "--model", str(model)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "serving" in line or len(lines) > 200:
                break
        assert f"http://127.0.0.1:{port}" in lines[-1], "".join(lines)
        assert "gradio" in urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read().decode().lower()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
