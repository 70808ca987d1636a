"""The guide's experiments q1-q3 in --smoke mode: tiny preset, 2 training steps, a 24-image
dataset. Their numbers mean nothing; the test checks each script runs end to end through
train/train.py and train/evaluate.py and writes its results and figures."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from stackgan.data.shapes import generate

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {
    "q1_stackgan": ({"q1_with_ca", "q1_without_ca"}, ["q1_stages.png", "q1_ca_ablation.png", "q1_ca_samples.png"]),
    "q2_stabilisers": ({"q2_unstabilised", "q2_mode_seeking", "q2_r1_ema"},
                       ["q2_stabilisers.png", "q2_vanishing_gradients.png", "q2_samples.png"]),
    "q3_pixelshuffle": ({"q3_nearest", "q3_pixelshuffle_icnr", "q3_pixelshuffle_plain"},
                        ["q3_at_init.png", "q3_early_samples.png", "q3_pixelshuffle.png"]),
}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    generate(folder, num_images=24, seed=0, workers=1, progress=False)
    return folder


def run_smoke(script: str, shapes, tmp_path, *flags, results=None):
    """One experiment script in --smoke mode on the tiny dataset, its folders under tmp_path."""
    subprocess.run([sys.executable, str(ROOT / "experiments" / script), "--smoke", *flags, "--data_dir", str(shapes),
                    "--results", str(results or tmp_path), "--work_dir", str(tmp_path / "work"),
                    "--figures", str(tmp_path / "figures")],
                   check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
                   capture_output=True, timeout=600)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_experiment_runs_end_to_end(name, shapes, tmp_path):
    run_smoke(f"{name}.py", shapes, tmp_path, results=tmp_path / "results")
    results = json.loads((tmp_path / "results" / f"{name}.json").read_text())
    runs, figures = EXPECTED[name]
    assert set(results["runs"]) == runs
    for run in results["runs"].values():
        assert run["samples"] == 8 and set(run["accuracy"]) == {"shape", "color", "size", "position", "background"}
        assert all(0.0 <= v <= 1.0 for v in run["accuracy"].values())
        assert math.isfinite(run["oracle_fid"]) and run["diversity_ratio"] >= 0
    assert results["seconds"] > 0 and results["command"].startswith(f"python experiments/{name}.py")
    for figure in figures:
        width, height = Image.open(tmp_path / "figures" / figure).size
        assert width >= 128 and height >= 64, figure


@pytest.mark.parametrize("stage,arms", [(1, ["shift", "nearest_text", "queue", "stem", "stem_queue"]),
                                        (2, ["stem", "queue"])])
def test_discriminator_negatives_experiment_trains_each_arm_and_probes_it(stage, arms, shapes, tmp_path):
    subset = [] if stage == 1 else ["--arms", ",".join(arms)]  # stage 1: every arm, the default
    run_smoke("q5_discriminator_negatives.py", shapes, tmp_path, *subset, "--stage", str(stage))
    results = json.loads((tmp_path / f"q5_discriminator_negatives_stage{stage}.json").read_text())
    assert results["stage"] == stage and results["steps"] == 2 and results["images"] > 0
    assert list(results["arms"]) == arms
    for arm in results["arms"].values():
        assert set(arm["attributes"]) == {"shape", "color", "size", "position", "pattern", "background"}
        assert all(0 <= row["logit"] <= 1 and 0 <= row["contrastive"] <= 1 for row in arm["attributes"].values())


@pytest.mark.parametrize("stage", [1, 2])
def test_texture_stem_experiment_learns_patterns_from_labels_for_each_arm(stage, shapes, tmp_path):
    run_smoke("q6_texture_stem.py", shapes, tmp_path, "--stage", str(stage))
    results = json.loads((tmp_path / f"q6_texture_stem_stage{stage}.json").read_text())
    assert results["stage"] == stage and results["chance"] == 0.25 and list(results["arms"]) == ["paper", "stem"]
    for curve in results["arms"].values():
        assert [row["step"] for row in curve] == [2]
        assert 0 <= curve[0]["test_accuracy"] <= 1 and curve[0]["loss"] > 0


@pytest.mark.parametrize("stage", [1, 2])
def test_text_conditioning_experiment_probes_every_attribute_in_each_representation(stage, shapes, tmp_path):
    run_smoke("q7_text_conditioning.py", shapes, tmp_path, "--stage", str(stage))
    results = json.loads((tmp_path / f"q7_text_conditioning_stage{stage}.json").read_text())
    attributes = {"shape", "color", "size", "position", "pattern", "background"}
    assert results["model"] == "bundled" and results["stage"] == stage
    assert results["probe_steps"] == 2 and results["swap_images"] > 0
    for arm in ("embedding", "condition_mean", "condition_sample"):
        rows = results["readability"][arm]
        assert set(rows) == attributes
        assert all(0 <= row["test"] <= 1 and 0 < row["chance"] < 1 and row["test_captions"] > 0 for row in rows.values())
        # Changing an attribute of a caption moves its embedding: a distance of 0 would mean
        # the encoder (or CA) cannot tell the two captions apart.
        assert set(results["swap_distance"][arm]) == attributes
        assert all(distance > 0 for distance in results["swap_distance"][arm].values())


def test_stage2_capacity_experiment_fine_tunes_the_bundled_stage2_on_the_oracles_pattern_loss(shapes, tmp_path):
    from stackgan.matcher import ImageTextMatcher, MatcherConfig
    matcher = ImageTextMatcher(MatcherConfig(image_size=32, channels=4, detail=True)).save_pretrained(tmp_path / "m")
    arms = {"": [], "_texture": ["--texture"], "_every_block": ["--every_block"],
            "_texture_matcher": ["--texture", "--matcher", str(matcher)], "_condition_mean": ["--condition_mean"]}
    for flags in arms.values():
        run_smoke("q8_stage2_capacity.py", shapes, tmp_path, "--batch_size", "2", *flags)
    results = {name: json.loads((tmp_path / f"q8_stage2_capacity{name}.json").read_text()) for name in arms}
    assert [(r["texture"], r["every_block"]) for r in results.values()] == [(False, False), (True, False), (False, True),
                                                                            (True, False), (False, False)]
    assert [r["teacher"] for r in results.values()] == ["oracle"] * 3 + [str(matcher), "oracle"]
    assert [r["condition_mean"] for r in results.values()] == [False] * 4 + [True]
    for result in results.values():
        assert result["batch_size"] == 2 and result["test_captions"] > 0
        curve = result["curve"]
        assert [row["step"] for row in curve] == [0, 2] and curve[1]["loss"] > 0
        for row in curve:
            assert 0 <= row["pattern"] <= 1
            assert len(row["confusion"]) == 4 and sum(map(sum, row["confusion"])) == result["test_captions"]
    # The new conditional-BN maps and the textures' colour start at zero: at step 0 both arms draw
    # the bundle's images.
    assert results[""]["curve"][0] == results["_every_block"]["curve"][0] == results["_texture"]["curve"][0]


def test_pattern_cues_experiment_scores_the_oracle_on_real_images_with_the_texture_removed(shapes, tmp_path):
    run_smoke("q9_pattern_cues.py", shapes, tmp_path)
    result = json.loads((tmp_path / "q9_pattern_cues.json").read_text())
    assert set(result["views"]) == {"as is", "via 64 px", "via 32 px", "9x9 box blur"}
    n = result["images"]
    assert 0 < n <= 8 and result["patterns"] == ["plain", "striped", "dotted", "checkered"]
    for view in result["views"].values():
        assert sum(map(sum, view["confusion"])) == n
        assert view["pattern"] == pytest.approx(sum(view["confusion"][i][i] for i in range(4)) / n)
    assert result["views"]["as is"]["pattern"] == 1.0  # the oracle reads real images (99.9% of 1,000)


def test_pattern_ceiling_experiment_pastes_the_dataset_pattern_onto_drawn_objects(shapes, tmp_path):
    run_smoke("q12_pattern_ceiling.py", shapes, tmp_path)
    result = json.loads((tmp_path / "q12_pattern_ceiling.json").read_text())
    views = result["views"]
    assert set(views) == {"as drawn", "pattern pasted", "flat object", "flat object, pattern pasted",
                          "recoloured, pattern pasted", "recoloured, pattern pasted, through 64 px",
                          "control: real plain shapes, pattern pasted"}
    n = result["captions"]
    assert 0 < n <= 8
    for name, view in views.items():
        assert sum(map(sum, view["confusion"])) == n
        assert view["pattern"] == pytest.approx(sum(view["confusion"][i][i] for i in range(4)) / n)
    # a plain caption gets nothing pasted: its images, and so its row, are the same
    assert views["as drawn"]["confusion"][0] == views["pattern pasted"]["confusion"][0]
    assert views["flat object"]["confusion"][0] == views["flat object, pattern pasted"]["confusion"][0]
    # the paste draws patterns the oracle knows: on real shapes it reads plain, stripes and dots
    control = views["control: real plain shapes, pattern pasted"]["confusion"]
    assert all(control[i][i] == sum(control[i]) > 0 for i in range(3))


def test_pattern_ceiling_recolours_a_tinted_object_and_averages_a_texture_away():
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    try:
        from common import object_mask, through
        from q12_pattern_ceiling import recolour
    finally:
        sys.path.pop(0)
    from stackgan.data.shapes.vocabulary import BACKGROUND_RGB, COLOR_RGB

    image = np.zeros((256, 256, 3), np.float32) + np.array(BACKGROUND_RGB["white"], np.float32)
    tinted = np.array(COLOR_RGB["red"], np.float32) * 0.89  # a plain red drawn as a dotted one's tint
    image[64:192, 64:192] = tinted
    mask = object_mask(image, "white")
    fixed = recolour(image, mask)
    assert np.allclose(fixed[128, 128], COLOR_RGB["red"]) and np.allclose(fixed[10, 10], image[10, 10])
    stripes = image.copy()
    stripes[64:192, 64:192][::2] = 0.0  # 1 px stripes: gone through 64 px, their mean kept
    import torch

    averaged = through(torch.tensor(stripes).permute(2, 0, 1)[None], 64)[0].permute(1, 2, 0).numpy()
    assert averaged[100:160, 100:160].std(axis=(0, 1)).max() < 1.0
    assert np.allclose(averaged[128, 128], stripes[64:192, 64:192].mean(axis=(0, 1)), atol=1.0)


def test_open_attributes_experiment_reads_what_captions_leave_open_for_each_draw(shapes, tmp_path):
    run_smoke("q10_open_attributes.py", shapes, tmp_path)
    result = json.loads((tmp_path / "q10_open_attributes_stage1.json").read_text())
    assert result["captions"] == 4 and result["images_per_caption"] == 2
    for draws in ("real", "both", "noise", "conditioning"):
        rows = {k: v for k, v in result[draws].items() if k != "draws"}
        # Captions name 2-3 of the six attributes, so each leaves 3-4 open: 12-16 (caption, attribute) pairs.
        assert 12 <= sum(r["captions"] for r in rows.values()) <= 16
        # Two images per caption: each caption's entropy is 0 (one reading) or log 2 (two).
        assert all(0 <= r["entropy"] <= math.log(2) + 1e-3 for r in rows.values())
    # Real images of a caption vary in what it leaves open (rendered at random, read by the oracle).
    assert max(r["entropy"] for k, r in result["real"].items() if k != "draws") > 0


def test_texture_choice_experiment_reads_the_gates_and_the_images(shapes, tmp_path):
    import dataclasses
    from stackgan import StackGANPipeline
    from stackgan.matcher import ImageTextMatcher, MatcherConfig
    from stackgan.models import Stage2Generator
    matcher = ImageTextMatcher(MatcherConfig(image_size=32, channels=4, detail=True)).save_pretrained(tmp_path / "m")
    pipe = StackGANPipeline.from_pretrained()
    textured = Stage2Generator(dataclasses.replace(pipe.model.config, g_texture=True))
    textured.load_state_dict(pipe.model.stage2.state_dict(), strict=False)
    pipe.model.stage2, pipe.model.config = textured, textured.config
    pipe.save_pretrained(tmp_path / "model")
    run_smoke("q11_texture_choice.py", shapes, tmp_path, "--model", str(tmp_path / "model"), "--matcher", str(matcher))
    result = json.loads((tmp_path / "q11_texture_choice.json").read_text())
    # The gates on the caption start at zero: no pattern word chooses a texture yet.
    assert result["gates"]["mean_spread"] == 0
    assert len(result["gates"]["logits"]) == 4
    assert all(set(rows) == {"plain", "striped", "dotted", "checkered"} for rows in result["gates"]["logits"].values())
    images = result["images"]
    assert 0 < images["captions"] <= 8
    for key in ("oracle", "matcher_shape", "matcher_pattern", "matcher_background"):
        assert 0 <= images[key] <= 1
    # The bundle has no textures: the script says so instead of reading nothing.
    bare = subprocess.run([sys.executable, str(ROOT / "experiments" / "q11_texture_choice.py"), "--smoke",
                           "--model", str(ROOT / "demo" / "pretrained" / "shapes"), "--data_dir", str(shapes),
                           "--results", str(tmp_path), "--work_dir", str(tmp_path / "work"),
                           "--figures", str(tmp_path / "figures")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    assert bare.returncode != 0 and "has no Stage-II textures" in bare.stderr


def test_sharpening_experiment_trains_each_variant_from_the_bilinear_upsampler(shapes, tmp_path):
    run_smoke("q13_stage2_sharpening.py", shapes, tmp_path)
    result = json.loads((tmp_path / "q13_stage2_sharpening.json").read_text())
    assert set(result["variants"]) == {"paper, L1", "paper, squared", "every block, L1", "every block, squared"}
    for name, variant in result["variants"].items():
        # each starts as the bilinear upsampler (its first step's loss is the upsampler's) and trains
        assert abs(variant["loss_over_bilinear_first_10"] - 1) < 0.2, name
        assert math.isfinite(variant["loss_over_bilinear_last_50"]) and len(variant["curve_every_25"]) == 1


def test_tint_precision_experiment_compares_drawn_and_real_object_colours(shapes, tmp_path):
    run_smoke("q14_tint_precision.py", shapes, tmp_path)
    result = json.loads((tmp_path / "q14_tint_precision.json").read_text())
    n = result["captions"]
    assert 0 < n <= 8 and set(result["stages"]) == {"stage1", "stage2"}
    for stage in result["stages"].values():
        assert set(stage) == {"plain", "striped", "dotted", "checkered"}
        assert 0 < sum(row["count"] for row in stage.values()) <= n
        for row in stage.values():
            assert row["count"] == 0 or 0 <= row["median"] <= 1


def test_tint_precision_reads_the_inside_colour_of_an_object():
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    try:
        from q14_tint_precision import inside_colour
    finally:
        sys.path.pop(0)
    image = np.full((64, 64, 3), 255.0, np.float32)  # white background
    image[20:40, 20:40] = (200.0, 20.0, 20.0)
    image[20, 20:40] = (128.0, 128.0, 128.0)  # an edge blend: left out with the outer ring
    assert np.allclose(inside_colour(image, "white"), (200.0, 20.0, 20.0))
    assert inside_colour(np.full((64, 64, 3), 255.0, np.float32), "white") is None


def test_refine_alone_experiment_trains_stage2_on_pairs_and_reads_it(shapes, tmp_path):
    run_smoke("q15_refine_alone.py", shapes, tmp_path)
    result = json.loads((tmp_path / "q15_refine_alone.json").read_text())
    n = result["samples"]
    assert [row["step"] for row in result["steps"]] == [0, 1, 2]
    # the oracle reads real 256 px Shapes images almost perfectly: the evaluation sees them right
    assert result["baselines"]["real_256px"]["pattern"] >= 0.75
    for row in result["steps"]:
        for view in ("real_64px_refined", "stage1_refined"):
            assert sum(map(sum, row[view]["confusion"])) == n and 0 <= row[view]["pattern"] <= 1
    assert all(math.isfinite(row["loss"]) for row in result["steps"][1:])
    for row in result["steps"]:
        texture = row["texture"]
        assert texture["inside"] > 0 and texture["outside"] > 0 and 0 < texture["gate_inside"] < 1
    # the real images carry far more fine detail than their 64 px versions upsampled
    assert result["baselines"]["real_256px_detail"] > 2 * result["baselines"]["real_64px_bilinear_detail"]
    assert result["isolated_textures"]["steps"] == 2
    control = result["real_control"]  # the texture module alone on real images, without and with zero mean
    assert [row["zero_mean"] for row in control] == [False, True]
    for row in control:
        assert row["steps"] == 2 and math.isfinite(row["loss_over_upsampler_last_20"])


def test_refine_alone_by_patch_statistics_with_the_pattern_probe_saves_its_grids(shapes, tmp_path):
    run_smoke("q15_refine_alone.py", shapes, tmp_path, "--loss", "statistics", "--gate_onehot", "--crop", "128",
              "--tag", "stats", "--grids", str(tmp_path / "grids"))
    result = json.loads((tmp_path / "q15_refine_alone_stats.json").read_text())
    assert all(math.isfinite(row["loss"]) for row in result["steps"][1:])
    grids = sorted((tmp_path / "grids").glob("*.png"))
    assert [g.name for g in grids] == ["step00000.png", "step00001.png", "step00002.png"]
    k = min(8, result["samples"])
    assert Image.open(grids[-1]).size == (k * 256, 3 * 256)   # real, refined real, refined Stage-I


def test_refine_alone_control_learns_the_datasets_textures_in_isolation():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    try:
        from q15_refine_alone import isolated_textures
    finally:
        sys.path.pop(0)
    result = isolated_textures(120, size=32, batch=8)
    # the texture module alone, every pixel an object's: its aligned loss falls well below a flat output's
    assert result["loss_over_flat_last_20"] < result["loss_over_flat_first_20"] - 0.1


def test_refine_alone_stage2_starts_as_the_models_own():
    import argparse

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    try:
        from q15_refine_alone import textured_stage2
    finally:
        sys.path.pop(0)
    from stackgan import StackGANPipeline

    model = StackGANPipeline.from_pretrained(str(Path(__file__).resolve().parents[1] / "demo" / "pretrained" / "shapes")).model
    generator = textured_stage2(model, argparse.Namespace(model="bundle", texture_start=0.0, texture_zero_mean=False)).eval()
    torch.manual_seed(0)
    image, embedding = torch.rand(2, 3, 64, 64) * 2 - 1, torch.randn(2, model.config.text_dim)
    eps = torch.zeros(2, model.config.condition_dim)  # c = mu: the restarted sigma does not enter
    with torch.no_grad():
        assert torch.allclose(generator(image, embedding, eps)[0], model.stage2.eval()(image, embedding, eps)[0], atol=1e-5)
        shaded = textured_stage2(model, argparse.Namespace(model="bundle", texture_start=0.05, texture_zero_mean=False)).eval()
        assert not torch.allclose(shaded(image, embedding, eps)[0], generator(image, embedding, eps)[0], atol=1e-4)


def test_refine_alone_crops_the_same_window_of_input_and_target():
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    try:
        from q15_refine_alone import random_crop
    finally:
        sys.path.pop(0)
    target = torch.rand(3, 3, 256, 256)
    small = F.interpolate(target, size=(64, 64), mode="area")
    for seed in range(5):
        a, b = random_crop(small, target, 128, torch.Generator().manual_seed(seed))
        assert a.shape == (3, 3, 32, 32) and b.shape == (3, 3, 128, 128)
        assert torch.allclose(F.interpolate(b, size=(32, 32), mode="area"), a, atol=1e-6)
    with pytest.raises(ValueError, match="--crop"):
        random_crop(small, target, 100, torch.Generator())
