import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from stackgan import StackGANConfig, StackGANModel, StackGANPipeline
from stackgan.pipeline import load_weights_strict
from stackgan.text import TextEncoder

CAPTIONS = ["a large red star on a white background", "a small blue circle at the top left"]


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder()


def tiny_model(stages=2, **overrides):
    torch.manual_seed(0)
    return StackGANModel(StackGANConfig.from_preset("tiny", **overrides).to_dict(), stages=stages)


@pytest.fixture
def pipe(encoder):
    return StackGANPipeline(tiny_model(), text_encoder=encoder)


def pixels(rows):
    return np.stack([np.asarray(image) for row in rows for image in row])


def test_generates_both_stages_as_pil_images(pipe):
    out = pipe(CAPTIONS, num_images_per_prompt=3, seed=0)
    assert len(out.stage1) == len(out.stage2) == 2 and all(len(r) == 3 for r in out.stage1 + out.stage2)
    assert out.stage1[0][0].size == (64, 64) and out.stage2[1][2].size == (256, 256)
    assert out.stage1[0][0].mode == "RGB" and out.seed == 0 and out.truncated == [False, False]


def test_same_seed_same_pixels_and_different_seeds_differ(pipe):
    a, b = pipe(CAPTIONS, 2, seed=7), pipe(CAPTIONS, 2, seed=7)
    assert np.array_equal(pixels(a.stage2), pixels(b.stage2))
    c = pipe(CAPTIONS, 2, seed=8)
    assert not np.array_equal(pixels(a.stage1), pixels(c.stage1))
    # within one call, different noise gives different images
    assert not np.array_equal(np.asarray(a.stage1[0][0]), np.asarray(a.stage1[0][1]))


def test_caption_images_do_not_depend_on_batching_or_other_captions(pipe):
    together = pipe(CAPTIONS, 3, seed=3, batch_size=2)
    alone = pipe(CAPTIONS[:1], 3, seed=3, batch_size=16)
    assert np.array_equal(pixels(together.stage2[:1]), pixels(alone.stage2))


def test_conditioning_controls(pipe):
    # mean CA and shared z: nothing random is left, every image is the same
    out = pipe(CAPTIONS[0], 3, seed=1, ca_mode="mean", vary="conditioning")
    images = pixels(out.stage2)
    assert all(np.array_equal(images[0], i) for i in images[1:])
    # ca_scale=0 is the mean mode
    zero = pipe(CAPTIONS[0], 3, seed=1, ca_scale=0.0)
    mean = pipe(CAPTIONS[0], 3, seed=1, ca_mode="mean")
    assert np.array_equal(pixels(zero.stage2), pixels(mean.stage2))
    # shared z, sampled conditioning: the images still differ
    varied = pixels(pipe(CAPTIONS[0], 3, seed=1, vary="conditioning").stage2)
    assert not np.array_equal(varied[0], varied[1])


def test_sample_noise_options(pipe):
    base = pipe.sample_noise(2, 4, seed=5)
    assert base["z"].shape == (2, 4, pipe.config.z_dim) and base["eps1"].shape == (2, 4, pipe.config.condition_dim)
    half = pipe.sample_noise(2, 4, seed=5, truncation=0.5, ca_scale=2.0)
    assert torch.allclose(half["z"], base["z"] * 0.5) and torch.allclose(half["eps2"], base["eps2"] * 2)
    shared = pipe.sample_noise(2, 4, seed=5, vary="noise")
    assert torch.equal(shared["eps1"][:, 1], base["eps1"][:, 0]) and torch.equal(shared["z"], base["z"])
    mean = pipe.sample_noise(1, 2, seed=5, ca_mode="mean")
    assert not mean["eps1"].any() and not mean["eps2"].any()


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_images_per_prompt=0), "num_images_per_prompt"),
    (dict(seed=-1), "seed"),
    (dict(seed=1.5), "seed"),
    (dict(ca_mode="median"), "ca_mode"),
    (dict(vary="everything"), "vary"),
    (dict(truncation=0.0), "truncation"),
    (dict(truncation=float("nan")), "truncation"),
    (dict(ca_scale=-1.0), "ca_scale"),
])
def test_bad_arguments_are_named(pipe, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pipe(CAPTIONS[0], **{"seed": 0, **kwargs})


def test_blank_caption_is_refused(pipe):
    with pytest.raises(ValueError, match="caption 1"):
        pipe(["a red star", "   "], seed=0)
    with pytest.raises(ValueError, match="no caption"):
        pipe([], seed=0)


def test_long_caption_is_flagged_truncated(pipe):
    out = pipe(["a red star " * 200], seed=0)
    assert out.truncated == [True]


def test_save_and_load_round_trip(pipe, encoder, tmp_path):
    folder = pipe.save_pretrained(tmp_path / "model")
    assert sorted(os.listdir(folder)) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["config"]["text_encoder"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert config["config"]["text_dim"] == 384 and config["stages"] == 2
    assert "StackGANPipeline.from_pretrained" in (folder / "README.md").read_text()
    loaded = StackGANPipeline.from_pretrained(folder, text_encoder=encoder)
    assert np.array_equal(pixels(pipe(CAPTIONS, 2, seed=4).stage2), pixels(loaded(CAPTIONS, 2, seed=4).stage2))


def test_loaded_pipeline_uses_the_encoder_named_in_its_config(pipe, tmp_path):
    folder = pipe.save_pretrained(tmp_path / "model")
    loaded = StackGANPipeline.from_pretrained(folder)  # no encoder passed
    assert loaded.text_encoder.model_id == pipe.config.text_encoder
    assert loaded(CAPTIONS[0], seed=0).stage2[0][0].size == (256, 256)


def test_text_statistics_are_saved_and_applied(encoder, tmp_path):
    model = tiny_model()
    model.set_text_statistics(torch.full((384,), 0.5), torch.full((384,), 2.0))
    pipe = StackGANPipeline(model, text_encoder=encoder)
    loaded = StackGANPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "m"), text_encoder=encoder)
    embeddings, _ = loaded.encode(["a red star"])
    assert torch.allclose(embeddings, (encoder.encode(["a red star"]) - 0.5) / 2.0)
    with pytest.raises(ValueError, match="positive"):
        model.set_text_statistics(torch.zeros(384), torch.zeros(384))


def test_stage1_only_model_returns_no_stage2(encoder, tmp_path):
    pipe = StackGANPipeline(tiny_model(stages=1), text_encoder=encoder)
    assert pipe(CAPTIONS[0], 2, seed=0).stage2 is None
    loaded = StackGANPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "s1"), text_encoder=encoder)
    assert loaded.model.stage2 is None
    out = loaded(CAPTIONS[0], 2, seed=0)
    assert out.stage2 is None and out.stage1[0][1].size == (64, 64)


def test_any_object_with_encode_works():
    class Fixed:
        def encode(self, captions):
            return torch.ones(len(captions), 384)

    out = StackGANPipeline(tiny_model(), text_encoder=Fixed())(["anything"], seed=0)
    assert out.stage2[0][0].size == (256, 256)


def test_encoder_mismatch_is_a_clear_error():
    class Other:
        model_id, dim = "sentence-transformers/all-mpnet-base-v2", 768

        def encode(self, captions):
            return torch.ones(len(captions), 768)

    with pytest.raises(ValueError, match="all-mpnet-base-v2.*does not match.*all-MiniLM-L6-v2"):
        StackGANPipeline(tiny_model(), text_encoder=Other())

    class WrongDim:
        def encode(self, captions):
            return torch.ones(len(captions), 100)

    with pytest.raises(ValueError, match=r"shape \(1, 100\).*text_dim=384"):
        StackGANPipeline(tiny_model(), text_encoder=WrongDim())(["a"], seed=0)


def test_interpolations_start_and_end_at_the_generated_images(pipe):
    a, b = CAPTIONS
    path = pipe.interpolate_captions(a, b, steps=4, seed=2)
    assert len(path.stage1[0]) == 4 and path.stage2[0][3].size == (256, 256)
    start = pipe(a, seed=2, ca_mode="mean")
    end = pipe(b, seed=2, ca_mode="mean")
    assert np.array_equal(np.asarray(path.stage2[0][0]), np.asarray(start.stage2[0][0]))
    assert np.array_equal(np.asarray(path.stage2[0][-1]), np.asarray(end.stage2[0][0]))
    seeds = pipe.interpolate_seeds(a, 2, 9, steps=5)
    for image, seed in ((seeds.stage1[0][0], 2), (seeds.stage1[0][-1], 9)):
        reference = np.asarray(pipe(a, seed=seed, ca_mode="mean").stage1[0][0]).astype(int)
        assert np.abs(np.asarray(image).astype(int) - reference).max() <= 1  # slerp endpoints, float rounding
    with pytest.raises(ValueError, match="steps"):
        pipe.interpolate_seeds(a, 1, 2, steps=1)


# --- loading refuses bad folders with an error naming the problem --------------------------------

@pytest.fixture
def saved(pipe, tmp_path):
    return pipe.save_pretrained(tmp_path / "model")


def edit_weights(folder, change):
    state = load_file(str(folder / "model.safetensors"))
    change(state)
    save_file(state, str(folder / "model.safetensors"))


def test_missing_tensor_is_named(saved):
    edit_weights(saved, lambda s: s.pop("stage2.to_image.0.weight"))
    with pytest.raises(ValueError, match=r"model.safetensors.*missing tensors \['stage2.to_image.0.weight'\]"):
        StackGANModel.from_pretrained(saved)


def test_extra_tensor_is_named(saved):
    edit_weights(saved, lambda s: s.update({"stage3.weight": torch.zeros(1)}))
    with pytest.raises(ValueError, match=r"unexpected tensors \['stage3.weight'\]"):
        StackGANModel.from_pretrained(saved)


def test_misshaped_tensor_is_named(saved):
    edit_weights(saved, lambda s: s.update({"text_mean": torch.zeros(100)}))
    with pytest.raises(ValueError, match=r"'text_mean' has shape \(100,\) in the file but \(384,\)"):
        StackGANModel.from_pretrained(saved)


def test_bad_file_leaves_the_model_untouched(saved):
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    edit_weights(saved, lambda s: (s.update({k: v + 1 for k, v in s.items()}), s.pop("text_std")))
    with pytest.raises(ValueError, match="text_std"):
        load_weights_strict(model, saved / "model.safetensors")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_not_a_safetensors_file(saved):
    (saved / "model.safetensors").write_bytes(b"\x80\x04 this is a pickle, not safetensors")
    with pytest.raises(ValueError, match="model.safetensors is not a valid safetensors file"):
        StackGANModel.from_pretrained(saved)


def test_pickle_weights_are_refused(saved):
    (saved / "model.safetensors").rename(saved / "pytorch_model.bin")
    with pytest.raises(ValueError, match="pytorch_model.bin.*safetensors only"):
        StackGANModel.from_pretrained(saved)


def test_unknown_config_key_is_named(saved):
    config = json.loads((saved / "config.json").read_text())
    config["config"]["num_stages"] = 3
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config.json: unknown StackGANConfig key\(s\) \['num_stages'\]"):
        StackGANModel.from_pretrained(saved)


def test_config_dimension_mismatch_names_the_tensor(saved):
    config = json.loads((saved / "config.json").read_text())
    config["config"]["z_dim"] = 9
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="stage1.fc.0.weight"):
        StackGANModel.from_pretrained(saved)


def test_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="holds no config.json"):
        StackGANModel.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="neither an existing model folder nor a Hub repo id"):
        StackGANModel.from_pretrained(str(tmp_path / "nope"))


# --- where models come from: checkpoint folders and the Hub cache -------------------------------

def test_checkpoint_folder_loads_its_pipeline(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "checkpoint-100" / "pipeline")
    assert StackGANModel.from_pretrained(tmp_path / "checkpoint-100").stages == 2


def fabricate_hub_cache(folder, cache, repo_id="someone/stackgan-tiny"):
    owner, name = repo_id.split("/")
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{owner}--{name}"
    shutil.copytree(folder, repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    return repo_id


def test_pull_from_the_hub_cache_offline(saved, encoder, tmp_path):
    repo_id = fabricate_hub_cache(saved, tmp_path / "cache")
    loaded = StackGANPipeline.from_pretrained(repo_id, cache_dir=str(tmp_path / "cache"), local_files_only=True,
                                              text_encoder=encoder)
    assert loaded.model.stages == 2
    # and the same through HF_HUB_OFFLINE in a fresh process, as a user would run it
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache")}
    code = ("from stackgan import StackGANModel; "
            f"print(StackGANModel.from_pretrained({repo_id!r}).config.preset)")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).parent.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("tiny")


class RecordingHfApi:
    """Stands at the HfApi boundary: records what would be created and uploaded."""

    def __init__(self):
        self.repos, self.uploads = [], []

    def create_repo(self, repo_id, repo_type, private, exist_ok):
        self.repos.append((repo_id, repo_type, private, exist_ok))

    def upload_folder(self, repo_id, repo_type, folder_path, commit_message, ignore_patterns):
        files = {p.relative_to(folder_path).as_posix(): p.read_bytes()
                 for p in Path(folder_path).rglob("*") if p.is_file()}
        self.uploads.append(dict(repo_id=repo_id, files=files, ignore=ignore_patterns, message=commit_message))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()


def test_push_to_hub_uploads_a_verified_model_folder(pipe, encoder, tmp_path):
    api = RecordingHfApi()
    url = pipe.push_to_hub("me/stackgan-tiny", private=True, api=api)
    assert url.endswith("/commit/abc")
    assert api.repos == [("me/stackgan-tiny", "model", True, True)]
    (upload,) = api.uploads
    assert sorted(upload["files"]) == ["README.md", "config.json", "model.safetensors"]
    assert "checkpoint-*" in upload["ignore"]
    # what was uploaded is a loadable model equal to the one pushed
    out = tmp_path / "uploaded"
    out.mkdir()
    for name, data in upload["files"].items():
        (out / name).write_bytes(data)
    loaded = StackGANPipeline.from_pretrained(out, text_encoder=encoder)
    assert np.array_equal(pixels(loaded(CAPTIONS[0], seed=1).stage2), pixels(pipe(CAPTIONS[0], seed=1).stage2))


def test_push_refuses_a_model_with_nan_weights(pipe):
    with torch.no_grad():
        pipe.model.stage2.to_image[0].weight[0, 0, 0, 0] = float("nan")
    api = RecordingHfApi()
    with pytest.raises(ValueError, match="refusing to upload.*stage2.to_image.0.weight"):
        pipe.push_to_hub("me/broken", api=api)
    assert api.uploads == []


def test_batchnorm_folding_keeps_the_images(encoder):
    model = tiny_model()
    with torch.no_grad():  # BN statistics of a trained model, not the identity of a fresh one
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.normal_(0, 0.5), m.running_var.uniform_(0.5, 2.0), m.bias.normal_(0, 0.1)
    folded = StackGANPipeline(model, text_encoder=encoder)
    plain = StackGANPipeline(model, text_encoder=encoder, fold_batchnorm=False)
    s1, s2 = folded.generators()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in s2.modules())
    assert s2.to_image[0].weight.is_contiguous(memory_format=torch.channels_last)
    noise = folded.sample_noise(1, 3, seed=0)
    e, _ = folded.encode(["a red star"])
    args = (e.expand(3, -1), noise["z"][0], noise["eps1"][0], noise["eps2"][0])
    for a, b in zip(folded.generate(*args), plain.generate(*args)):
        assert (a - b).abs().max() < 1e-5
    # new weights -> new folded copies
    with torch.no_grad():
        model.stage2.to_image[0].weight.mul_(2)
    assert folded.generators()[1] is not s2


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="torch.compile's CPU backend needs a C++ compiler")
def test_compiled_pipeline_draws_the_same_images(encoder):
    model = tiny_model()
    compiled = StackGANPipeline(model, text_encoder=encoder, compile=True)
    eager = StackGANPipeline(model, text_encoder=encoder)
    a = compiled("a red star", num_images_per_prompt=2, seed=3)
    b = eager("a red star", num_images_per_prompt=2, seed=3)
    for x, y in zip(a.stage1[0] + a.stage2[0], b.stage1[0] + b.stage2[0]):
        assert np.abs(np.asarray(x, dtype=int) - np.asarray(y, dtype=int)).max() <= 1  # uint8 rounding
