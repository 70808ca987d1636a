"""The demo page: `build_demo(pipeline)` lays it out around an already loaded StackGANPipeline.

Two public API endpoints, stable for gradio_client users (README "Demo"):

    /generate     (caption, num_images, seed, truncation, ca_mode, ca_scale) -> (Stage-I gallery, Stage-II gallery)
    /interpolate  (mode, caption_a, caption_b, seed_a, seed_b, steps)       -> (Stage-I gallery, Stage-II gallery)

They are declared apart from the buttons, whose events are private: the page can gain controls
(e.g. "what varies") and outputs (compare view, notes) without changing what clients call.
"""

from __future__ import annotations

import gradio as gr

from stackgan.card import flatten

from .handlers import (EXAMPLE_CAPTIONS, MAX_CAPTION_CHARS, MAX_IMAGES, MAX_SEED, MAX_STEPS, Handlers, Result,
                       enlarge, random_seed)
from .zerogpu import gpu

# System fonts only: the page loads nothing from outside the server.
THEME = gr.themes.Soft(primary_hue="indigo", font=["ui-sans-serif", "system-ui", "sans-serif"],
                       font_mono=["ui-monospace", "Consolas", "monospace"])
# Stage-I images are 64x64 shown much larger: keep every generated pixel a sharp square.
CSS = "#stage1-gallery img, #path-stage1 img { image-rendering: pixelated; }"
VARY_CHOICES = [("noise and conditioning", "both"), ("noise z only", "noise"), ("conditioning only", "conditioning")]
CA_MODE_CHOICES = [("sample: μ + σ·ε", "sample"), ("mean: μ only", "mean")]
INTERPOLATION_CHOICES = [("caption A → caption B, fixed noise (seed A)", "caption"),
                         ("seed A → seed B, fixed caption A", "seed")]
GALLERY_HEIGHT = 340  # px: two rows of thumbnails (unset, Gradio reserves 450 px even for one row)


def build_demo(pipeline, *, max_queue: int = 100, concurrency: int = 2) -> gr.Blocks:
    """The Gradio app for `pipeline`. `max_queue`: requests waiting before new ones are refused;
    `concurrency`: requests processed at once (generation itself runs one at a time)."""
    handlers = Handlers(pipeline)
    model_events = dict(concurrency_id="model", concurrency_limit=concurrency)

    def generate_api(caption, num_images, seed, truncation, ca_mode, ca_scale, progress=gr.Progress()):
        progress(0, desc="Generating")
        result = handlers.generate(caption, num_images, seed, truncation, ca_mode, ca_scale)
        return result.stage1, result.stage2

    def generate_page(caption, num_images, seed, truncation, ca_mode, ca_scale, vary, progress=gr.Progress()):
        progress(0, desc="Generating")
        result = handlers.generate(caption, num_images, seed, truncation, ca_mode, ca_scale, vary)
        return result.stage1, result.stage2, result.compare(0), status(result)

    def interpolate_api(mode, caption_a, caption_b, seed_a, seed_b, steps, progress=gr.Progress()):
        progress(0, desc="Interpolating")
        result = handlers.interpolate(mode, caption_a, caption_b, seed_a, seed_b, steps)
        return result.stage1, result.stage2

    def interpolate_page(mode, caption_a, caption_b, seed_a, seed_b, steps, progress=gr.Progress()):
        progress(0, desc="Interpolating")
        result = handlers.interpolate(mode, caption_a, caption_b, seed_a, seed_b, steps)
        return result.stage1, result.stage2, status(result)

    def compare_selected(stage1_items, stage2_items, event: gr.SelectData):
        if not stage2_items or event.index >= len(stage2_items):
            return None
        return enlarge(stage1_items[event.index][0]), stage2_items[event.index][0]

    with gr.Blocks(title="StackGAN", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# StackGAN\nText to image in two stages (Zhang et al., ICCV 2017): Stage-I sketches a "
                    "64×64 image from the caption (shown enlarged, without smoothing), Stage-II refines it to "
                    "256×256." + ("" if handlers.has_stage2 else " **This model has no Stage-II.**"))
        with gr.Tab("Generate"):
            with gr.Row(equal_height=True):
                caption = gr.Textbox(label="Caption", placeholder=EXAMPLE_CAPTIONS[0], max_length=MAX_CAPTION_CHARS,
                                     scale=5, elem_id="caption")
                generate_button = gr.Button("Generate", variant="primary", scale=1, elem_id="generate")
            gr.Examples([[text] for text in EXAMPLE_CAPTIONS], inputs=[caption], label="Examples")
            with gr.Row():
                stage1 = gallery("Stage-I", columns=4, elem_id="stage1-gallery")
                stage2 = gallery("Stage-II", columns=4, elem_id="stage2-gallery")
            notes = gr.Markdown(elem_id="status")
            with gr.Row():
                with gr.Column():
                    with gr.Row():
                        num_images = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="Number of images")
                        seed = gr.Number(0, minimum=0, maximum=MAX_SEED, step=1, label="Seed", elem_id="seed")
                        randomize = gr.Button("Random seed", scale=0, elem_id="randomize")
                    vary = gr.Radio(VARY_CHOICES, value="both", label="What varies across the images")
                    truncation = gr.Slider(0.1, 1.5, value=1.0, step=0.05, label="Truncation",
                                           info="scales the noise z: lower gives more typical, less varied images")
                    ca_mode = gr.Radio(CA_MODE_CHOICES, value="sample", label="Conditioning augmentation")
                    ca_scale = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="CA scale", info="multiplies σ")
                with gr.Column():
                    compare = gr.ImageSlider(label="Compare: Stage-I enlarged ↔ Stage-II",
                                             format="png", type="pil", visible=handlers.has_stage2, elem_id="compare")
                    if not handlers.has_stage2:
                        gr.Markdown("This model has no Stage-II: there is nothing to compare.")
        with gr.Tab("Interpolate"):
            gr.Markdown("Walk between two captions at fixed noise, or between two seeds at a fixed caption, "
                        "in K steps (the paper's Fig. 8).")
            mode = gr.Radio(INTERPOLATION_CHOICES, value="caption", label="What moves")
            with gr.Row():
                caption_a = gr.Textbox(EXAMPLE_CAPTIONS[0], label="Caption A", max_length=MAX_CAPTION_CHARS)
                caption_b = gr.Textbox(EXAMPLE_CAPTIONS[1], label="Caption B", max_length=MAX_CAPTION_CHARS)
            with gr.Row():
                seed_a = gr.Number(0, minimum=0, maximum=MAX_SEED, step=1, label="Seed A")
                seed_b = gr.Number(1, minimum=0, maximum=MAX_SEED, step=1, label="Seed B")
                steps = gr.Slider(2, MAX_STEPS, value=8, step=1, label="Steps K")
            interpolate_button = gr.Button("Interpolate", variant="primary", elem_id="interpolate")
            path1 = gallery("Stage-I", columns=8, elem_id="path-stage1")
            path2 = gallery("Stage-II", columns=8, elem_id="path-stage2")
            path_notes = gr.Markdown()
        with gr.Tab("Model"):
            gr.Markdown(model_summary(pipeline), elem_id="model-panel")

        generate_inputs = [caption, num_images, seed, truncation, ca_mode, ca_scale]
        interpolate_inputs = [mode, caption_a, caption_b, seed_a, seed_b, steps]
        gr.on([generate_button.click, caption.submit], gpu(generate_page), inputs=generate_inputs + [vary],
              outputs=[stage1, stage2, compare, notes], api_visibility="private", **model_events)
        interpolate_button.click(gpu(interpolate_page), inputs=interpolate_inputs, outputs=[path1, path2, path_notes],
                                 api_visibility="private", **model_events)
        for images in (stage1, stage2):
            images.select(compare_selected, inputs=[stage1, stage2], outputs=compare, api_visibility="private")
        randomize.click(random_seed, outputs=seed, queue=False, api_visibility="private")
        # No triggers: endpoints for API clients only (see the module docstring).
        gr.on([], gpu(generate_api), inputs=generate_inputs, outputs=[stage1, stage2], api_name="generate",
              api_description="Stage-I (64x64) and Stage-II (256x256) images for one caption; same inputs, "
                              "same images.", **model_events)
        gr.on([], gpu(interpolate_api), inputs=interpolate_inputs, outputs=[path1, path2], api_name="interpolate",
              api_description='mode "caption": caption A -> B at the noise of seed A; mode "seed": seed A -> B '
                              "at caption A; `steps` images.", **model_events)
    demo.queue(max_size=max_queue, default_concurrency_limit=concurrency)
    return demo


def gallery(label: str, columns: int, elem_id: str) -> gr.Gallery:
    """An output gallery in PNG (Gradio's default, webp, would re-encode the images lossily); it gives
    PIL images to the compare view, and is never an upload box even though it is an event's input."""
    return gr.Gallery(label=label, format="png", type="pil", columns=columns, height=GALLERY_HEIGHT,
                      object_fit="contain", interactive=False, elem_id=elem_id)


def status(result: Result) -> str:
    return " ".join([f"{len(result.stage1)} image(s) in {result.seconds:.2f} s."] + result.notes)


def model_summary(pipeline) -> str:
    """Markdown for the model panel: what the model is, how long it trained, its metrics."""
    config, info = pipeline.config, pipeline.model.training_info
    generator_parameters = sum(p.numel() for p in pipeline.model.parameters())
    rows = [("preset", config.preset),
            ("stages", "Stage-I + Stage-II" if pipeline.model.stage2 is not None else "Stage-I only"),
            ("text encoder", config.text_encoder),
            ("generator parameters", f"{generator_parameters:,}"),
            ("upsampling", config.upsample)]
    rows += [(key.replace("_", " "), info[key]) for key in ("dataset", "steps", "wall_time") if key in info]
    lines = ["### Model", "", "| | |", "|---|---|"] + [f"| {name} | {value} |" for name, value in rows]
    metrics = flatten(info.get("metrics") or {})
    if metrics:
        lines += ["", "### Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in metrics.items()]
    else:
        lines += ["", "No metrics recorded with this model (see train/evaluate.py)."]
    return "\n".join(lines)


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, **kwargs):
    """Serve `demo` locally: no share link, no server-side rendering, no MCP server."""
    return demo.launch(server_name=host, server_port=port, share=False, ssr_mode=False, mcp_server=False,
                       run_history=False, max_threads=4, theme=THEME, css=CSS, **kwargs)
