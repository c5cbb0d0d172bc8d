"""The Gradio Blocks app: invert an image, then edit it with every registered editor.

Tabs: **Invert** (model, upload or example, inverter, iterations, progress bar, input next to reconstruction with
MSE and seconds), **Edit** (one slider per saved direction of the model), **Interpolate** (a second image, a
strip and a frame slider), **Diffuse** (a target pasted into the inverted image by a box or a painted mask),
**Style mix**, and **More editors** (every other registered editor, e.g. from ``hooks/``). The editors' controls
are drawn from their declared parameters (:mod:`.controls`). The current result and its W+ code can be
downloaded from any tab.

Per-user data lives in a ``gr.State`` (:class:`~.session.Session`); models are loaded once and shared read-only.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

from ..editors.manipulate import Manipulate
from ..images import ImageError
from ..plugins import get_plugins
from .controls import Control, DecodeContext, build_controls, components_of, decode_controls, mask_background
from .examples import example_images
from .models import ModelRegistry, ModelSpec
from .session import (
    AppError,
    Session,
    apply_inversion,
    default_steps,
    display,
    edit_directions,
    invert_image,
    inverter_choices,
    run_editor,
    select_frame,
    strip,
    write_downloads,
)

log = logging.getLogger(__name__)

TITLE = "IDInvert: in-domain GAN inversion and editing"
#: direction sliders drawn (hidden when a model has fewer directions)
MAX_DIRECTIONS = 24
MAX_STEPS = 2000
#: editors with a tab of their own; every other registered editor appears under "More editors"
EDITOR_TABS = {"interpolate": "Interpolate", "diffuse": "Diffuse", "style-mix": "Style mix"}
EXAMPLES_LABEL = ("Examples: 6 held-out test faces, then 6 out-of-distribution ones (hand, extreme attributes, "
                  "head shape, rotated, bar, off-centre)")
INTRO = ("Upload a face (or pick an example), choose an inverter and press **Invert**: the image is mapped to a "
         "code of the generator, which then re-draws it. Edit that code on the other tabs; download the result "
         "or its W+ code at the bottom. Images are shown enlarged, in the model's own pixels.")


def launch_options() -> dict[str, Any]:
    """Settings for ``demo.launch`` that go with :func:`build_app` (uploads capped at 20 MB)."""
    return {"max_file_size": "20mb", "show_error": True}


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn user-fixable problems into ``gr.Error`` messages and unexpected ones into a readable message plus
    a logged traceback, so one bad request never takes the app down."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (AppError, ImageError) as exc:
            raise gr.Error(str(exc), title="Cannot do that") from None
        except Exception as exc:  # noqa: BLE001 - the app must keep serving
            log.exception("request failed")
            raise gr.Error(f"Something went wrong ({type(exc).__name__}: {exc}). The app keeps running: try "
                           "another image or setting.", title="Error") from None

    return wrapper


def _gradio_progress(progress: Any) -> Callable[[int, int, str], None]:
    def report(step: int, total: int, text: str) -> None:
        progress((step, max(total, 1)), desc=text, unit="steps")

    return report


def build_app(models: Sequence[ModelSpec] | ModelRegistry | None = None, *, include_bundled: bool = True,
              concurrency: int = 1, title: str = TITLE) -> gr.Blocks:
    """Build the app (not launched) for a list of models, the first being the default.

    ``models=None`` serves the bundled default generator. ``concurrency`` is how many requests of one kind
    (e.g. inversions) run at once; the queue holds the rest. The default model is loaded here, so a bad
    model name fails now with a clear error rather than in the page.
    """
    from .models import default_specs

    registry = models if isinstance(models, ModelRegistry) else ModelRegistry(
        list(models) if models is not None else default_specs(), include_bundled=include_bundled)
    bundle0 = registry.get(registry.default)
    G0 = bundle0.generator
    examples = example_images(G0.resolution)
    example_paths = [p for p, _ in examples]
    plugins = get_plugins()
    editors = {name: plugins.get("editor", name) for name in plugins.names("editor")}
    direction_names0 = list(bundle0.directions)
    strength = next(p for p in Manipulate.params if p.name == "strength")

    def ctx(session: Session) -> DecodeContext:
        return DecodeContext(registry.get(session.model), session)

    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
        state = gr.State(Session(model=registry.default))
        gr.Markdown(f"# {title}\n\n{INTRO}")
        with gr.Row():
            model_menu = gr.Dropdown(registry.names, value=registry.default, label="Model", scale=1,
                                     elem_id="model")
            model_info = gr.Markdown(bundle0.describe(), elem_id="model-info")

        with gr.Tabs():
            # -- Invert ------------------------------------------------------------------------------------
            with gr.Tab("Invert", id="invert", elem_id="tab-invert"):
                with gr.Row():
                    with gr.Column():
                        image_in = gr.Image(type="filepath", image_mode=None, label="Image to invert",
                                            sources=["upload", "clipboard"], height=300, elem_id="input-image")
                        gr.Examples([[p] for p in example_paths], inputs=image_in, label=EXAMPLES_LABEL,
                                    examples_per_page=12)
                    with gr.Column():
                        method = gr.Radio(inverter_choices(), value="idinvert", label="Inverter", elem_id="method")
                        steps = gr.Slider(0, MAX_STEPS, value=default_steps("idinvert") or 100, step=1,
                                          label="Iterations", elem_id="steps",
                                          info="optimisation steps (IDInvert's default: 100; unused by encoder "
                                               "only)")
                        invert_btn = gr.Button("Invert", variant="primary", elem_id="invert-button")
                        metrics = gr.Markdown(elem_id="metrics")
                with gr.Row():
                    seen = _shown("Input, as the model sees it", "seen")
                    recon = _shown("Reconstruction", "reconstruction")

            # -- Edit: one slider per direction ------------------------------------------------------------
            with gr.Tab("Edit", id="edit", elem_id="tab-edit"):
                directions_note = gr.Markdown(_directions_note(direction_names0))
                with gr.Row():
                    with gr.Column(scale=1):
                        sliders = [gr.Slider(strength.min, strength.max, value=0.0, step=strength.step,
                                             label=direction_names0[i] if i < len(direction_names0)
                                             else f"direction {i}", visible=i < len(direction_names0),
                                             elem_id=f"direction-{i}", info=None)
                                   for i in range(MAX_DIRECTIONS)]
                        reset_btn = gr.Button("Reset all sliders", elem_id="reset-button")
                    with gr.Column(scale=2), gr.Row():
                        edit_before = _shown("Reconstruction", "edit-before")
                        edit_out = _shown("Edited", "edit-result")

            # -- Interpolate -------------------------------------------------------------------------------
            editor_controls: dict[str, list[Control]] = {}
            editor_outputs: dict[str, Any] = {}
            editor_buttons: dict[str, Any] = {}
            if "interpolate" in editors:
                with gr.Tab("Interpolate", id="interpolate", elem_id="tab-interpolate"):
                    with gr.Row():
                        with gr.Column():
                            second_in = gr.Image(type="filepath", image_mode=None, height=256,
                                                 label="Second image (also used by style mixing)",
                                                 sources=["upload", "clipboard"], elem_id="second-image")
                            gr.Examples([[p] for p in example_paths], inputs=second_in, label=EXAMPLES_LABEL,
                                        examples_per_page=12)
                            second_btn = gr.Button("Invert second image", elem_id="invert-second-button")
                        with gr.Column():
                            second_recon = _shown("Second image, reconstructed", "second-reconstruction", 256)
                            second_metrics = gr.Markdown(elem_id="second-metrics")
                    gr.Markdown(editors["interpolate"].description)
                    editor_controls["interpolate"] = build_controls(
                        "interpolate", editors["interpolate"].params, G0, direction_names=direction_names0)
                    editor_buttons["interpolate"] = gr.Button("Interpolate", variant="primary",
                                                              elem_id="interpolate-button")
                    strip_out = _shown("Strip: from your image to the second code", "strip", None)
                    frame = gr.Slider(0, 6, value=6, step=1, label="Frame", elem_id="frame")
                    frame_out = _shown("Frame", "frame-image", 256)

            # -- Diffuse, Style mix, More editors: generic panels ------------------------------------------
            panels = [(name, label) for name, label in EDITOR_TABS.items() if name in editors and
                      name != "interpolate"]
            others = [n for n in editors if n not in EDITOR_TABS and n != "manipulate"]
            for name, label in panels:
                with gr.Tab(label, id=name, elem_id=f"tab-{name}"):
                    editor_outputs[name] = _editor_panel(name, editors[name], G0, direction_names0,
                                                         example_paths, editor_controls,
                                                         editor_buttons)
            if others:
                with gr.Tab("More editors", id="more", elem_id="tab-more"):
                    gr.Markdown("Editors from plugins (`hooks/`, entry points); their controls come from the "
                                "parameters they declare. They start from the inverted image.")
                    for name in others:
                        with gr.Accordion(name, open=True):
                            editor_outputs[name] = _editor_panel(name, editors[name], G0, direction_names0,
                                                                 example_paths, editor_controls,
                                                                 editor_buttons)

        with gr.Row():
            download_image = gr.DownloadButton("Download result image (PNG)", elem_id="download-image")
            download_code = gr.DownloadButton("Download W+ code (.safetensors)", elem_id="download-code")
        downloads = [download_image, download_code]

        # -- events --------------------------------------------------------------------------------------------
        def slider_updates(names: list[str]) -> list[Any]:
            return [gr.update(visible=i < len(names), label=names[i] if i < len(names) else f"direction {i}",
                              value=0.0) for i in range(MAX_DIRECTIONS)]

        @_guard
        def on_model(session: Session, name: str, progress: gr.Progress = gr.Progress()) -> list[Any]:
            progress(0.0, desc=f"loading {name}")
            bundle = registry.get(name)
            session.reset(name)
            names = list(bundle.directions)
            return [session, bundle.describe(), _directions_note(names), None, None, "", None, None,
                    *slider_updates(names), None, None]

        model_menu.change(on_model, [state, model_menu],
                          [state, model_info, directions_note, seen, recon, metrics, edit_before, edit_out,
                           *sliders, *downloads], api_name="select_model")

        def on_method(name: str) -> Any:
            steps_default = default_steps(name)
            return gr.update(value=steps_default, interactive=True) if steps_default is not None else \
                gr.update(interactive=False)

        method.input(on_method, [method], [steps], api_visibility="private")

        @_guard
        def on_invert(session: Session, name: str, payload: Any, method_name: str, n_steps: float,
                      progress: gr.Progress = gr.Progress()) -> list[Any]:
            bundle = registry.get(name)
            inversion = invert_image(bundle, payload, method_name, int(n_steps), _gradio_progress(progress))
            if session.model != name:
                session.reset(name)
            apply_inversion(session, inversion, name)
            files = write_downloads(session, name, "reconstruction")
            shown = display(inversion.image)
            return [session, display(inversion.target), shown, inversion.summary(), shown, shown, *files]

        # a new image starts unedited: the sliders go back to 0 once the inversion has succeeded
        invert_btn.click(on_invert, [state, model_menu, image_in, method, steps],
                         [state, seen, recon, metrics, edit_before, edit_out, *downloads],
                         api_name="invert", preprocess=False).success(
            lambda: [gr.update(value=0.0) for _ in sliders], None, sliders, api_visibility="private", queue=False)

        @_guard
        def on_edit(session: Session, *values: float) -> list[Any]:
            bundle = registry.get(session.model)
            names = list(bundle.directions)
            if not names:
                raise AppError(f"{bundle.name!r} has no saved directions yet, so there is nothing to move.")
            image = edit_directions(bundle, session, {n: float(v or 0.0) for n, v in zip(names, values)})
            return [session, display(image), *write_downloads(session, session.model, "edit")]

        gr.on([s.input for s in sliders], on_edit, [state, *sliders], [state, edit_out, *downloads],
              api_name="edit", trigger_mode="always_last", show_progress="minimal")

        @_guard
        def on_reset(session: Session) -> list[Any]:
            bundle = registry.get(session.model)
            image = edit_directions(bundle, session, {})
            return [session, *[gr.update(value=0.0) for _ in sliders], display(image),
                    *write_downloads(session, session.model, "edit")]

        reset_btn.click(on_reset, [state], [state, *sliders, edit_out, *downloads], api_name="reset_edit")

        if "interpolate" in editors:
            @_guard
            def on_invert_second(session: Session, payload: Any, method_name: str, n_steps: float,
                                 progress: gr.Progress = gr.Progress()) -> list[Any]:
                bundle = registry.get(session.model)
                inversion = invert_image(bundle, payload, method_name, int(n_steps), _gradio_progress(progress),
                                         what="second image")
                session.second_image, session.second_code = inversion.target, inversion.code
                return [session, display(inversion.image), inversion.summary()]

            second_btn.click(on_invert_second, [state, second_in, method, steps],
                             [state, second_recon, second_metrics], api_name="invert_second", preprocess=False)

            interp_controls = editor_controls["interpolate"]

            @_guard
            def on_interpolate(session: Session, *values: Any) -> list[Any]:
                context = ctx(session)
                result = run_editor(context.bundle, session, editors["interpolate"],
                                    decode_controls(interp_controls, values, context))
                frames = result.images[0]
                last = len(frames) - 1
                return [session, strip(frames), gr.update(maximum=last, value=last), display(frames[last]),
                        *write_downloads(session, session.model, "interpolation")]

            editor_buttons["interpolate"].click(
                on_interpolate, [state, *components_of(interp_controls)],
                [state, strip_out, frame, frame_out, *downloads], api_name="interpolate", preprocess=False)

            @_guard
            def on_frame(session: Session, index: float) -> list[Any]:
                image = select_frame(session, int(index))
                return [session, display(image), *write_downloads(session, session.model, "frame")]

            frame.input(on_frame, [state, frame], [state, frame_out, *downloads], api_name="frame",
                        trigger_mode="always_last", show_progress="minimal")

        for name, output in editor_outputs.items():
            _wire_editor(name, editors[name], editor_controls[name], editor_buttons[name], output, state,
                         downloads, ctx)

    demo.queue(default_concurrency_limit=max(1, int(concurrency)), max_size=256)
    demo.registry = registry  # type: ignore[attr-defined] - for launchers and tests
    return demo


def _shown(label: str, elem_id: str, height: int | None = 300) -> gr.Image:
    """An output image (PNG, so what the page shows is exactly what was rendered)."""
    return gr.Image(label=label, interactive=False, height=height, format="png", elem_id=elem_id)


def _directions_note(names: Sequence[str]) -> str:
    if not names:
        return ("This model has no saved directions yet, so there are no sliders. Learn some with "
                "`idinvert directions learn` (they go to the model folder's `directions/`).")
    return (f"Move a slider to push the inverted code along that direction (`w + strength * n`, the "
            f"`manipulate` editor); the sliders add up. {len(names)} direction(s).")


def _editor_panel(name: str, editor: Any, G0: Any, direction_names: list[str], example_paths: list[str],
                  controls_out: dict[str, list[Control]], buttons_out: dict[str, Any]) -> Any:
    """Draw one editor's description, controls, button and result image; return the result image."""
    gr.Markdown(editor.description or name)
    with gr.Row():
        with gr.Column():
            controls = build_controls(name, editor.params, G0, direction_names=direction_names,
                                      examples=example_paths)
            buttons_out[name] = gr.Button(f"Apply {name}", variant="primary", elem_id=f"{name}-button")
        with gr.Column():
            output = _shown(f"{name} result", f"{name}-result")
    controls_out[name] = controls
    return output


def _wire_editor(name: str, editor: Any, controls: list[Control], button: Any, output: Any, state: Any,
                 downloads: list[Any], ctx: Callable[[Session], DecodeContext]) -> None:
    @_guard
    def on_apply(session: Session, *values: Any) -> list[Any]:
        context = ctx(session)
        result = run_editor(context.bundle, session, editor, decode_controls(controls, values, context))
        images = result.images[0]
        shown = strip(images) if result.codes.ndim == 4 else display(images)
        return [session, shown, *write_downloads(session, session.model, name)]

    button.click(on_apply, [state, *components_of(controls)], [state, output, *downloads],
                 api_name=name.replace("-", "_"), preprocess=False)
    images = [c for c in controls if c.param.kind == "image"]
    masks = [c for c in controls if c.param.kind == "mask"]
    if images and masks:  # paint the mask over the image it selects from
        @_guard
        def on_image(session: Session, payload: Any) -> Any:
            return mask_background(payload, ctx(session).bundle.resolution)

        images[0].components[0].change(on_image, [state, images[0].components[0]], [masks[0].components[0]],
                                       preprocess=False, api_visibility="private")


__all__ = ["EDITOR_TABS", "MAX_DIRECTIONS", "build_app", "launch_options"]
