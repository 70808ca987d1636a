"""The README.md model card written beside every saved model."""

from __future__ import annotations

from .config import StackGANConfig


def model_card(config: StackGANConfig, stages: int, training: dict) -> str:
    """Hub front matter + what the model is, how it was trained, its metrics, and how to load it.

    `training` may hold: dataset, command, steps, wall_time, data_seed, repo_id, metrics (a dict
    of stage -> {metric: value}, or metric -> value), sample_grid (a file name beside the card),
    discriminators (the stages whose D ships beside the model, for fine-tuning), prior (the caption
    prior's train/train_prior.py run).
    """
    repo_id = training.get("repo_id", "path/to/this/folder")
    lines = [
        "---",
        "library_name: stackgan",
        "pipeline_tag: text-to-image",
        "license: mit",
        "tags:", "- text-to-image", "- gan", "- stackgan",
        "---",
        "",
        f"# StackGAN ({config.preset} preset, {'Stage-I + Stage-II' if stages == 2 else 'Stage-I only'})",
        "",
        "Text-to-image generation with stacked GANs (Zhang et al., ICCV 2017): Stage-I draws a rough "
        "64x64 image from the caption, Stage-II refines it into 256x256.",
        "",
        "## Use",
        "",
        "```python",
        "from stackgan import StackGANPipeline",
        f'pipe = StackGANPipeline.from_pretrained("{repo_id}")',
        'out = pipe("a large red star on a white background", num_images_per_prompt=4, seed=0)',
        "out.stage1[0][0].save('stage1.png'); " + ("out.stage2[0][0].save('stage2.png')" if stages == 2 else ""),
        "```",
        "",
        "## Model",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    for key in ("text_encoder", "text_dim", "condition_dim", "z_dim", "gf_dim", "df_dim", "r_num", "upsample",
                "ca_activation", "d_text_input", "d_matching", "kl_weight", "gan_loss", "d_norm", "gradient_penalty",
                "mode_seeking_weight", "contrastive_weight", "stage2_image_skip", "g_texture", "d_stem", "use_ema",
                "ema_decay", "batch_size", "g_learning_rate", "d_learning_rate", "prior_noise_dim"):
        lines.append(f"| {key} | {getattr(config, key)} |")
    facts = [(k, training[k]) for k in ("dataset", "data_seed", "steps", "wall_time") if k in training]
    if facts or "command" in training:
        lines += ["", "## Training", ""] + [f"- {k.replace('_', ' ')}: {v}" for k, v in facts]
        lines += run_lines(training, with_facts=False)
    stage1 = training.get("stage1")
    if stage1:
        lines += ["", "Stage-I was trained first and is frozen in this model:", ""] + run_lines(stage1)
    prior = training.get("prior")
    if prior and config.prior_noise_dim:
        lines += ["", "Its caption prior (`stackgan/prior.py`: completes what a caption leaves open) was "
                  "trained on the generators by:", ""] + run_lines(prior)
    metrics = training.get("metrics")
    if metrics and all(isinstance(v, dict) for v in metrics.values()):  # {stage: {metric: value}}: one column each
        stages = list(metrics)
        names = list(dict.fromkeys(name for stage in stages for name in metrics[stage]))
        lines += ["", "## Metrics", "", "| metric | " + " | ".join(stages) + " |", "|---|" + "---:|" * len(stages)]
        lines += [f"| {name} | " + " | ".join(str(flatten({name: metrics[s].get(name, "")})[name]) for s in stages) + " |"
                  for name in names]
    elif metrics:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in flatten(metrics).items()]
    if training.get("discriminators"):
        stages_with_d = training["discriminators"]
        one = len(stages_with_d) == 1
        named = " and ".join(f"Stage-{'I' * s}" for s in stages_with_d)
        lines += ["", f"The {named} discriminator{'' if one else 's'} this model was trained against "
                  f"ship{'s' if one else ''} in `discriminators.safetensors`: `train/train.py --init_from` "
                  f"continues from {'it' if one else 'them'} (inference never reads that file)."]
    if training.get("note"):
        lines += ["", f"> {training['note']}"]
    if training.get("sample_grid"):
        lines += ["", "## Samples", "", f"![samples]({training['sample_grid']})"]
    return "\n".join(lines) + "\n"


def run_lines(run: dict, with_facts: bool = True) -> list[str]:
    """A run's steps, wall time and command, then the runs it was initialised from (--init_from),
    newest first, so the card holds every command that made the weights."""
    lines = [f"- {k.replace('_', ' ')}: {run[k]}" for k in ("steps", "wall_time") if k in run] if with_facts else []
    if "command" in run:
        lines += ["", "```bash", str(run["command"]), "```"]
    parent = run.get("init_from")
    if isinstance(parent, dict):
        source = parent.get("checkpoint") or parent.get("model", "a checkpoint")
        lines += ["", f"It started from `{source}` (`--init_from`), made by:", ""]
        lines += run_lines(parent)
    elif parent:  # runs from before the record was kept: the path alone
        lines += ["", f"It started from `{parent}` (`--init_from`)."]
    return lines


def flatten(metrics: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = round(value, 4) if isinstance(value, float) else value
    return out
