"""A rejected upload (issue 16, item 6) shows its message in the page, and the server log gets one line for it, not
a traceback: refusing a user's file is not a fault of the server. An unexpected failure still logs its traceback
(which also shows that this test would see one)."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("gradio", reason="the app needs gradio (the [demo] / [test] extra)")
import httpx  # noqa: E402
from app_fixtures import make_tiny_model, running_app  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError as ClientAppError  # noqa: E402
from PIL import Image  # noqa: E402

from idinvert_plugins.app import ui  # noqa: E402


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with running_app(make_tiny_model(tmp_path_factory.mktemp("app-model"))) as (_, url):
        yield url


def test_rejected_uploads_are_messages_in_the_page_and_one_log_line(app_url, tmp_path, capfd, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger=ui.log.name)
    client = Client(app_url, verbose=False)
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"plain text, not an image")
    ok = tmp_path / "ok.png"
    Image.new("RGB", (16, 16), (200, 120, 90)).save(ok)
    capfd.readouterr()
    with pytest.raises(ClientAppError, match="That image cannot be used: the upload is not an image file") as exc:
        client.predict("tiny", handle_file(str(notes)), "encoder", 0, api_name="/invert")
    assert exc.value.title == "Cannot do that"  # the page's message box
    with pytest.raises(ClientAppError, match="not an image file"):  # the photo flow's upload
        client.predict("tiny", handle_file(str(notes)), True, api_name="/find_faces")
    # over the 20 MB cap: Gradio refuses the upload itself, with a status and a message, no traceback either
    reply = httpx.post(app_url + "gradio_api/upload", files={"files": ("big.png", b"\0" * (21 << 20), "image/png")})
    assert reply.status_code == 413 and "File size exceeded maximum allowed size" in reply.text
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, err[-2000:]
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused")]
    assert len(refused) == 2 and "refused (on_invert): That image cannot be used" in refused[0], refused
    assert all(r.exc_info is None for r in caplog.records if r.name == ui.log.name)
    assert "MSE" in client.predict("tiny", handle_file(str(ok)), "encoder", 0, api_name="/invert")[2]  # still serving

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ui, "invert_image", broken)
    with pytest.raises(ClientAppError, match=r"Something went wrong \(RuntimeError: boom\)"):
        client.predict("tiny", handle_file(str(ok)), "encoder", 0, api_name="/invert")
    out, err = capfd.readouterr()
    assert "Traceback" in err and "RuntimeError: boom" in err  # an unexpected failure keeps its traceback

