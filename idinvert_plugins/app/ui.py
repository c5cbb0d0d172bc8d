"""The Gradio Blocks app: invert an image, then edit it with every registered editor.

Tabs: **Invert** (model, upload or example, inverter, iterations, progress bar, input next to reconstruction with
MSE and seconds), **Edit** (one slider per saved direction of the model, every one of them, in collapsible groups:
attributes, each categorical family, unsupervised components; each labelled clean / weak / not measured from the
directions' ``summary.json``), **Interpolate** (a second image, a
strip and a frame slider), **Diffuse** (a target pasted into the inverted image by a box or a painted mask),
**Style mix**, and **More editors** (every other registered editor, e.g. from ``hooks/``). The editors' controls
are drawn from their declared parameters (:mod:`.controls`). The current result and its W+ code can be
downloaded from any tab.

Per-user data lives in a ``gr.State`` (:class:`~.session.Session`); models are loaded once and shared read-only.

Gradio draws static components, so the Edit tab holds a pool of group slots (:class:`~.controls.SlotPlan`), sized
when the app is built for every model of the menu whose directions can be listed locally (plus a spare group);
choosing a model relabels, shows and hides them. The ``/edit`` endpoint takes one strength per slot of the
pool in page order; ``demo.direction_slots(model)`` says which direction each slot moves.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from ..editors.directions import find_directions
from ..editors.manipulate import Manipulate
from ..hub import resolve_model
from ..images import ImageError
from ..plugins import get_plugins
from .controls import (
    CLEAN,
    CLEAN_RULE,
    NOT_MEASURED,
    WEAK,
    Control,
    DecodeContext,
    DirectionGroup,
    SlotAssignment,
    SlotPlan,
    assign_slots,
    build_controls,
    components_of,
    decode_controls,
    direction_rows,
    group_directions,
    mask_background,
)
from .examples import example_images
from .inverter_options import build_option_panels, wire_option_panels
from .models import ModelBundle, ModelRegistry, ModelSpec
from .photos import PhotoError, find_faces, write_full_photo
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
#: fewest sliders per group slot of the Edit tab (more when a served model has a larger group)
MIN_SLIDERS_PER_GROUP = 8
#: sliders side by side inside a group (keeps the page short)
SLIDERS_PER_ROW = 2
MAX_STEPS = 2000
#: editors with a tab of their own; every other registered editor appears under "More editors"
EDITOR_TABS = {"interpolate": "Interpolate", "diffuse": "Diffuse", "style-mix": "Style mix"}
EXAMPLES_LABEL = ("Examples: 6 held-out test faces, then 6 out-of-distribution ones (hand, extreme attributes, "
                  "head shape, rotated, bar, off-centre)")
INTRO = ("Upload a face (or pick an example), choose an inverter and press **Invert**: the image is mapped to a "
         "code of the generator, which then re-draws it. Edit that code on the other tabs; download the result "
         "or its W+ code at the bottom. Images are shown enlarged, in the model's own pixels.")


#: the Edit tab's images stay in view while the slider groups beside them scroll
CSS = "#edit-images { position: sticky; top: 8px; align-self: flex-start; }"


def launch_options() -> dict[str, Any]:
    """Settings for ``demo.launch`` that go with :func:`build_app` (uploads capped at 20 MB)."""
    return {"max_file_size": "20mb", "show_error": True, "css": CSS}


def _direction_paths(bundle: ModelBundle, spec: ModelSpec | None) -> dict[str, Path]:
    """The file behind each of the bundle's directions, found the way its pipeline finds them."""
    folders = getattr(getattr(bundle, "pipeline", None), "direction_folders", None)
    if folders is None:  # a bundle without a pipeline: the model folder's directions/ and the spec's folders
        try:
            return find_directions(bundle.folder, extra_dirs=spec.directions if spec is not None else ())
        except (OSError, ValueError, TypeError) as exc:
            log.warning("direction labels of %s: %s", bundle.name, exc)
            return {}
    paths: dict[str, Path] = {}
    for folder in map(Path, folders):  # later folders win, as when the directions are loaded
        if folder.is_dir():
            paths.update({p.stem: p for p in sorted(folder.glob("*.safetensors")) if p.is_file()})
    return paths


def bundle_direction_groups(bundle: ModelBundle, spec: ModelSpec | None = None) -> list[DirectionGroup]:
    """The Edit tab's groups for a loaded model, labelled from the ``summary.json`` next to each direction."""
    paths = _direction_paths(bundle, spec)
    return group_directions(bundle.directions, direction_rows({n: p for n, p in paths.items()
                                                                if n in bundle.directions}))


def listed_direction_groups(spec: ModelSpec) -> list[DirectionGroup]:
    """The groups of a model not loaded yet, from its direction files alone (nothing downloaded); [] when its
    folder does not resolve locally. Used to size the Edit tab's slider pool."""
    try:
        resolved = resolve_model(spec.model, local_files_only=True)
        paths = find_directions(resolved, extra_dirs=spec.directions)
    except Exception:  # noqa: BLE001 - sizing only: a model that does not resolve here is sized when chosen
        return []
    return group_directions(dict.fromkeys(paths), direction_rows(paths))


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn user-fixable problems (a rejected upload, a missing step) into ``gr.Error`` messages shown in the page,
    logged as one line without a traceback (they are not the server's faults), and unexpected ones into a readable
    message plus a logged traceback, so one bad request never takes the app down."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (AppError, ImageError) as exc:
            log.info("refused (%s): %s", fn.__name__, exc)
            raise gr.Error(str(exc), title="Cannot do that", print_exception=False) from None
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
    examples = example_images(G0.resolution, domain=bundle0.pipeline.domain)
    example_paths = [p for p, _ in examples]
    plugins = get_plugins()
    editors = {name: plugins.get("editor", name) for name in plugins.names("editor")}
    direction_names0 = list(bundle0.directions)
    strength = next(p for p in Manipulate.params if p.name == "strength")
    groups0 = bundle_direction_groups(bundle0, registry.specs.get(registry.default))
    plan = SlotPlan.fitting([groups0, *(listed_direction_groups(spec) for name, spec in registry.specs.items()
                                        if name != registry.default)], min_per_group=MIN_SLIDERS_PER_GROUP)
    assignments: dict[str, SlotAssignment] = {registry.default: assign_slots(groups0, plan)}

    def slots(name: str | None) -> SlotAssignment:
        """Which direction each slider slot moves for model ``name`` (computed once per model)."""
        name = name or registry.default
        if name not in assignments:
            bundle = registry.get(name)
            assignments[name] = assign_slots(bundle_direction_groups(bundle, registry.specs.get(name)), plan)
        return assignments[name]

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
                        with gr.Accordion("Photo: find the faces, paste the result back", open=False,
                                          elem_id="photo-panel"):
                            photo_mode = gr.Checkbox(False, elem_id="photo-mode",
                                                     label="The upload is a photo: align a face for the model")
                            face_pick = gr.Dropdown([], label="Face", elem_id="face-pick", interactive=True,
                                                    info="0 is the largest; its aligned crop is what is inverted")
                            faces_preview = gr.Image(label="Faces found", interactive=False, height=220,
                                                     format="png", elem_id="faces-preview")
                            paste_btn = gr.Button("Paste the current result into the photo",
                                                  elem_id="paste-button")
                            full_photo = gr.File(label="Full-size photo (PNG)", elem_id="full-photo")
                    with gr.Column():
                        method = gr.Radio(inverter_choices(), value="idinvert", label="Inverter", elem_id="method")
                        steps = gr.Slider(0, MAX_STEPS, value=default_steps("idinvert") or 100, step=1,
                                          label="Iterations", elem_id="steps",
                                          info="optimisation steps (IDInvert's default: 100; unused by encoder "
                                               "only)")
                        option_panels = build_option_panels([n for _, n in inverter_choices()], "idinvert", G0,
                                                            example_paths)
                        invert_btn = gr.Button("Invert", variant="primary", elem_id="invert-button")
                        metrics = gr.Markdown(elem_id="metrics")
                with gr.Row():
                    seen = _shown("Input, as the model sees it", "seen")
                    recon = _shown("Reconstruction", "reconstruction")

            # -- Edit: every direction, one slider each, in collapsible groups ------------------------------
            with gr.Tab("Edit", id="edit", elem_id="tab-edit"):
                shown0 = slots(registry.default)
                directions_note = gr.Markdown(_directions_note(shown0), elem_id="directions-note")
                with gr.Row():
                    with gr.Column(scale=2, elem_id="direction-sliders"):
                        direction_groups, slider_rows, sliders = _direction_pool(plan, shown0, strength)
                        reset_btn = gr.Button("Reset all sliders", elem_id="reset-button")
                    with gr.Column(scale=1, elem_id="edit-images"):
                        edit_before = _shown("Reconstruction", "edit-before", 240)
                        edit_out = _shown("Edited", "edit-result", 240)

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
        def direction_updates(shown: SlotAssignment) -> list[Any]:
            groups = [gr.update(visible=h is not None, label=h or f"group {g}", open=o)
                      for g, (h, o) in enumerate(zip(shown.headers, shown.opened))]
            rows = [gr.update(visible=any(shown.sliders[i] for i in row_slots)) for _, row_slots in slider_rows]
            return groups + rows + [gr.update(visible=d is not None, label=d.label if d else f"direction {i}",
                                       info=d.info if d else None, value=0.0)
                             for i, d in enumerate(shown.sliders)]

        @_guard
        def on_model(session: Session, name: str, progress: gr.Progress = gr.Progress()) -> list[Any]:
            progress(0.0, desc=f"loading {name}")
            bundle = registry.get(name)
            session.reset(name)
            shown = slots(name)
            return [session, bundle.describe(), _directions_note(shown), None, None, "", None, None,
                    *direction_updates(shown), None, None]

        model_menu.change(on_model, [state, model_menu],
                          [state, model_info, directions_note, seen, recon, metrics, edit_before, edit_out,
                           *direction_groups, *(row for row, _ in slider_rows), *sliders, *downloads],
                          api_name="select_model")

        def on_method(name: str) -> Any:
            steps_default = default_steps(name)
            return gr.update(value=steps_default, interactive=True) if steps_default is not None else \
                gr.update(interactive=False)

        method.input(on_method, [method], [steps], api_visibility="private")

        # -- the photo flow: faces of an uploaded photo, the chosen one's crop as the input, paste-back --------
        from uuid import uuid4

        from .session import downloads_dir, payload_path

        photo_state = gr.State(None)

        def crop_file(photos: Any, k: Any) -> str | None:
            if photos is None or k is None:
                return None
            path = downloads_dir() / f"face-{int(k)}-{uuid4().hex[:10]}.png"
            photos.crop(int(k)).save(path)
            return str(path)

        @_guard
        def on_photo(name: str, payload: Any, enabled: bool) -> list[Any]:
            if not enabled or payload is None:
                return [None, gr.update(choices=[], value=None), None, gr.update()]
            photos = find_faces(registry.get(name), payload_path(payload))
            return [photos, gr.update(choices=photos.choices(), value=0), photos.preview(), crop_file(photos, 0)]

        # preprocess=False: the upload reaches on_photo as a file, so an unreadable one is refused with a message
        # (Gradio's own decoding would fail with a traceback in the server log)
        image_in.upload(on_photo, [model_menu, image_in, photo_mode],
                        [photo_state, face_pick, faces_preview, image_in], api_name="find_faces", preprocess=False)
        photo_mode.input(on_photo, [model_menu, image_in, photo_mode],
                         [photo_state, face_pick, faces_preview, image_in], api_visibility="private",
                         preprocess=False)

        @_guard
        def on_face(photos: Any, k: Any) -> Any:
            return crop_file(photos, k) if photos is not None and k is not None else gr.update()

        face_pick.input(on_face, [photo_state, face_pick], [image_in], api_visibility="private")

        @_guard
        def on_paste(session: Session, photos: Any, k: Any) -> str:
            if photos is None or k is None:
                raise PhotoError("No photo: tick 'The upload is a photo' and upload one first.")
            if session.result_image is None:
                raise PhotoError("Nothing to paste yet: invert the face (and edit it) first.")
            return write_full_photo(photos, int(k), session.result_image, downloads_dir())

        paste_btn.click(on_paste, [state, photo_state, face_pick], [full_photo], api_name="paste_photo")

        wire_option_panels(option_panels, state, image_in, method, _guard,
                           lambda session: registry.get(session.model or registry.default).resolution)

        @_guard
        def on_invert(session: Session, name: str, payload: Any, method_name: str, n_steps: float,
                      progress: gr.Progress = gr.Progress()) -> list[Any]:
            bundle = registry.get(name)
            options = option_panels.decode(session, method_name, DecodeContext(bundle, session))
            inversion = invert_image(bundle, payload, method_name, int(n_steps), _gradio_progress(progress),
                                     options=options)
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
            if not bundle.directions:
                raise AppError(f"{bundle.name!r} has no saved directions yet, so there is nothing to move.")
            names = slots(session.model).names
            image = edit_directions(bundle, session, {n: float(v or 0.0) for n, v in zip(names, values)
                                                      if n is not None})
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
    demo.direction_slots = lambda name=None: slots(name).names  # type: ignore[attr-defined] - /edit's order
    demo.direction_plan = plan  # type: ignore[attr-defined] - slot i is in group slot i // plan.per_group
    return demo


def _direction_pool(plan: SlotPlan, shown: SlotAssignment, strength: Any
                    ) -> tuple[list[gr.Accordion], list[tuple[gr.Row, range]], list[gr.Slider]]:
    """Draw the Edit tab's slider pool as ``shown`` fills it: one accordion per group slot, sliders
    :data:`SLIDERS_PER_ROW` to a row (a row is hidden when all its sliders are). Returns the accordions, the
    rows with the slots they hold, and the flat slider list (slot order)."""
    accordions: list[gr.Accordion] = []
    rows: list[tuple[gr.Row, range]] = []
    sliders: list[gr.Slider] = []
    for g in range(plan.groups):
        header = shown.headers[g]
        start = g * plan.per_group
        with gr.Accordion(header or f"group {g}", open=shown.opened[g], visible=header is not None,
                          elem_id=f"direction-group-{g}") as accordion:
            for first in range(start, start + plan.per_group, SLIDERS_PER_ROW):
                row_slots = range(first, min(first + SLIDERS_PER_ROW, start + plan.per_group))
                with gr.Row(visible=any(shown.sliders[i] for i in row_slots)) as row:
                    for i in row_slots:
                        d = shown.sliders[i]
                        sliders.append(gr.Slider(strength.min, strength.max, value=0.0, step=strength.step,
                                                 label=d.label if d else f"direction {i}",
                                                 info=d.info if d else None, visible=d is not None,
                                                 elem_id=f"direction-{i}"))
                rows.append((row, row_slots))
        accordions.append(accordion)
    return accordions, rows, sliders


def _shown(label: str, elem_id: str, height: int | None = 300) -> gr.Image:
    """An output image (PNG, so what the page shows is exactly what was rendered)."""
    return gr.Image(label=label, interactive=False, height=height, format="png", elem_id=elem_id)


def _directions_note(shown: SlotAssignment) -> str:
    """The Edit tab's note: how many directions in how many groups, how many clean, what the labels mean."""
    n = sum(d is not None for d in shown.sliders) + len(shown.left_out)
    if not n:
        return ("This model has no saved directions yet, so there are no sliders. Learn some with "
                "`idinvert directions learn` (they go to the model folder's `directions/`).")
    statuses = [d.status for d in shown.sliders if d is not None]
    counts = ", ".join(f"{statuses.count(s)} {word}" for s, word in
                       ((CLEAN, "clean"), (WEAK, "weak"), (NOT_MEASURED, "not measured")) if statuses.count(s))
    groups = len({h.rsplit(", part ", 1)[0] for h in shown.headers if h})
    text = (f"Move a slider to push the inverted code along that direction (`w + strength * n`, the `manipulate` "
            f"editor); the sliders add up. **{n} direction{'s' if n != 1 else ''}** in {groups} "
            f"group{'s' if groups != 1 else ''} ({counts}); open a group to see its sliders. {CLEAN_RULE}.")
    if shown.left_out:
        text += (f"\n\n**{len(shown.left_out)} directions have no slider** ({', '.join(shown.left_out)}): the "
                 "page was built for fewer. Start the app with this model first in `--model` so the page has room "
                 "for all of them.")
    return text


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


__all__ = ["EDITOR_TABS", "MIN_SLIDERS_PER_GROUP", "build_app", "bundle_direction_groups", "launch_options",
           "listed_direction_groups"]
