"""train/train.py on the tiny preset: both stages, exact resume after SIGKILL, 2 processes, Hub push."""

import argparse
import importlib.util
import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from stackgan import StackGANPipeline
from stackgan.data.shapes import generate
from stackgan.text import TextEncoder

from demo_server import free_port

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "train" / "train.py"
spec = importlib.util.spec_from_file_location("train_script", TRAIN)
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    generate(folder, num_images=20, seed=0, workers=1, progress=False)
    return folder


def flags(shapes, output, *extra):
    return ["--dataset", "shapes", "--data_dir", str(shapes), "--output_dir", str(output), "--preset", "tiny",
            "--train_batch_size", "4", "--seed", "3", "--validation_steps", "1000", "--logging_steps", "1",
            "--num_validation_images", "1", *map(str, extra)]


def run(*argv, env=None, **kwargs):
    return subprocess.run([sys.executable, str(TRAIN), *argv], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, cwd=ROOT, **kwargs)


def weights(output):
    state = json.loads((output / "config.json").read_text())
    return load_file(str(output / "model.safetensors")), state


def test_stage1_then_stage2(shapes, tmp_path):
    s1 = train.main(train.parse_args(flags(shapes, tmp_path / "s1", "--stage", 1, "--max_train_steps", 3,
                                           "--checkpointing_steps", 2, "--use_ema")))
    pipe = StackGANPipeline.from_pretrained(s1)
    assert pipe.model.stages == 1 and pipe.model.training_info["steps"] == 3
    assert sorted(p.name for p in s1.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    assert (s1 / "samples.png").is_file() and (s1 / "checkpoint-2" / "pipeline" / "config.json").is_file()
    # text statistics come from the training captions
    assert not torch.allclose(pipe.model.text_std, torch.ones_like(pipe.model.text_std))
    log = [json.loads(line) for line in (s1 / "logs" / "train" / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in log if "d_loss" in row]
    assert [row["step"] for row in steps] == [1, 2, 3]
    assert {"d_loss", "g_loss", "d_real", "d_fake", "kl", "lr"} <= set(steps[0])
    card = (s1 / "README.md").read_text()
    assert "train.py" in card and "steps: 3" in card

    s2 = train.main(train.parse_args(flags(shapes, tmp_path / "s2", "--stage", 2, "--stage1_model", s1,
                                           "--max_train_steps", 2, "--checkpointing_steps", 10)))
    pipe2 = StackGANPipeline.from_pretrained(s2)
    assert pipe2.model.stages == 2
    # Stage-I was frozen: its weights are exactly those of the Stage-I model
    for key, value in pipe.model.stage1.state_dict().items():
        assert torch.equal(value, pipe2.model.stage1.state_dict()[key]), key
    out = pipe2("a large red star", num_images_per_prompt=2, seed=0)
    assert out.stage2[0][1].size == (256, 256)
    # the card records both runs: Stage-II's command and the frozen Stage-I's
    assert pipe2.model.training_info["stage1"]["steps"] == 3
    card2 = (s2 / "README.md").read_text()
    assert "Stage-I was trained first" in card2 and card2.count("train.py") >= 2
    # any checkpoint folder loads as a pipeline
    assert StackGANPipeline.from_pretrained(s2 / "checkpoint-2").model.stages == 2
    # Stage-II resumes on its own Stage-I only: the checkpoint does not hold Stage-I's weights
    other = train.main(train.parse_args(flags(shapes, tmp_path / "other", "--max_train_steps", 1)))
    with pytest.raises(ValueError, match=f"another Stage-I model .* than --stage1_model {re.escape(str(other))}"):
        train.main(train.parse_args(flags(shapes, tmp_path / "s2", "--stage", 2, "--stage1_model", other,
                                          "--max_train_steps", 3, "--resume_from_checkpoint", "latest")))
    resumed = train.main(train.parse_args(flags(shapes, tmp_path / "s2", "--stage", 2, "--stage1_model", s1,
                                                "--max_train_steps", 3, "--resume_from_checkpoint", "latest")))
    assert StackGANPipeline.from_pretrained(resumed).model.training_info["steps"] == 3
    # a flag that adds generator parts (--g_texture) fine-tunes a model trained without them: the
    # rest is loaded, the new parts start at their init (G held still here, so nothing else moves)
    textured = run(*flags(shapes, tmp_path / "textured", "--stage", 2, "--stage1_model", s1, "--init_from", s2,
                          "--g_texture", "true", "--max_train_steps", 1, "--d_warmup_steps", 1))
    assert textured.returncode == 0, textured.stderr[-2000:]
    assert re.search(r"it lacks \d+ generator tensors this run's flags add \(texture\.", textured.stdout + textured.stderr)
    tensors, state = weights(tmp_path / "textured")
    before, _ = weights(s2)
    assert state["config"]["g_texture"] is True and "stage2.texture.color.weight" in tensors
    assert all(torch.equal(tensors[k], v) for k, v in before.items() if k.startswith("stage2.") and "running" not in k
               and "num_batches" not in k)


def test_killed_run_resumes_to_the_same_weights(shapes, tmp_path):
    # with the options that keep state or change the step: EMA, the contrastive queue (a D buffer)
    common = flags(shapes, tmp_path / "full", "--max_train_steps", 8, "--checkpointing_steps", 2,
                   "--gan_loss", "hinge", "--use_ema", "--contrastive_weight", 1.0, "--d_text_input", "projection",
                   "--contrastive_queue", 6, "--g_conditioning", "every_block", "--wrong_image", "nearest_text")
    assert run(*common).returncode == 0
    interrupted = tmp_path / "killed"
    argv = [a if a != str(tmp_path / "full") else str(interrupted) for a in common]
    process = subprocess.Popen([sys.executable, str(TRAIN), *argv], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + 240
    while not (interrupted / "checkpoint-4").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (interrupted / "model.safetensors").exists(), "the run finished before it could be killed"
    resumed = run(*argv, "--resume_from_checkpoint", "latest")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stdout
    full, killed = weights(tmp_path / "full")[0], weights(interrupted)[0]
    for key in full:
        assert torch.equal(full[key], killed[key]), key
    for name in ("generator", "discriminator", "ema"):
        a = load_file(str(tmp_path / "full" / "checkpoint-8" / f"{name}.safetensors"))
        b = load_file(str(interrupted / "checkpoint-8" / f"{name}.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    queue = load_file(str(interrupted / "checkpoint-8" / "discriminator.safetensors"))
    assert int(queue["queue_filled"]) == 6 and queue["text_queue"].abs().sum() > 0


def test_nan_loss_stops_with_the_step_and_no_bad_checkpoint(shapes, tmp_path):
    args = train.parse_args(flags(shapes, tmp_path / "nan", "--max_train_steps", 20, "--checkpointing_steps", 1,
                                  "--learning_rate", 1e30))
    with pytest.raises(FloatingPointError, match=r"(d_loss|g_loss) is (nan|inf|-inf) at step \d+"):
        train.main(args)
    for checkpoint in (tmp_path / "nan").glob("checkpoint-*"):
        for file in checkpoint.glob("*.safetensors"):
            assert all(torch.isfinite(t).all() for t in load_file(str(file)).values()), file
    assert not (tmp_path / "nan" / "model.safetensors").exists()


def test_time_box_stops_with_a_checkpoint_and_the_model(shapes, tmp_path):
    out = tmp_path / "boxed"
    train.main(train.parse_args(flags(shapes, out, "--max_train_steps", 100_000, "--checkpointing_steps", 100_000,
                                      "--max_train_minutes", 0.002, "--contrastive_weight", 1.0)))
    steps = json.loads((out / "config.json").read_text())["training"]["steps"]
    assert 1 <= steps < 100_000
    assert (out / f"checkpoint-{steps}" / "generator.safetensors").is_file()
    records = [json.loads(line) for line in (out / "logs" / "train" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["d_contrastive"] > 0 and r["g_contrastive"] > 0 for r in records if "d_contrastive" in r)
    with pytest.raises(ValueError, match="--max_train_minutes must be > 0"):
        train.main(train.parse_args(flags(shapes, out, "--max_train_minutes", 0)))


def test_bad_inputs_fail_before_training(shapes, tmp_path):
    with pytest.raises(FileNotFoundError, match="--data_dir .*missing.* does not exist"):
        train.main(train.parse_args(flags(tmp_path / "missing", tmp_path / "o")))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PermissionError, match="not writable"):
        train.main(train.parse_args(flags(shapes, blocker / "out")))
    with pytest.raises(ValueError, match="--stage 2 needs --stage1_model"):
        train.main(train.parse_args(flags(shapes, tmp_path / "o", "--stage", 2)))
    with pytest.raises(ValueError, match="--push_to_hub needs --hub_model_id"):
        train.main(train.parse_args(flags(shapes, tmp_path / "o", "--push_to_hub")))
    with pytest.raises(ValueError, match="token"):
        train.main(train.parse_args(flags(shapes, tmp_path / "o", "--report_to", "wandb", "--hub_token", "hf_x")))
    with pytest.raises(ValueError, match="--d_warmup_steps must be >= 0, got -1"):
        train.main(train.parse_args(flags(shapes, tmp_path / "o", "--d_warmup_steps", -1)))


def test_stage1_model_must_fit_and_resume_must_match(shapes, tmp_path):
    s1 = train.main(train.parse_args(flags(shapes, tmp_path / "s1", "--max_train_steps", 1)))
    with pytest.raises(ValueError, match="does not fit --preset tiny: gf_dim: Stage-I model has 16, this run 32"):
        train.main(train.parse_args(flags(shapes, tmp_path / "s2", "--stage", 2, "--stage1_model", s1,
                                          "--gf_dim", 32)))
    with pytest.raises(ValueError, match="g_conditioning: Stage-I model has 'input', this run 'every_block'"):
        train.main(train.parse_args(flags(shapes, tmp_path / "s2", "--stage", 2, "--stage1_model", s1,
                                          "--g_conditioning", "every_block")))
    # a checkpoint written before an option existed resumes: the option then had its default
    state_file = s1 / "checkpoint-1" / "state.json"
    state = json.loads(state_file.read_text())
    for key in ("contrastive_weight", "icnr", "stage2_image_skip"):
        del state["config"][key]
    state_file.write_text(json.dumps(state))
    resumed = train.main(train.parse_args(flags(shapes, s1, "--max_train_steps", 2, "--resume_from_checkpoint",
                                                "latest")))
    assert StackGANPipeline.from_pretrained(resumed).model.training_info["steps"] == 2
    with pytest.raises(ValueError, match=r"different config \(keys \['gan_loss'\]\)"):
        train.main(train.parse_args(flags(shapes, tmp_path / "s1", "--max_train_steps", 2, "--gan_loss", "hinge",
                                          "--resume_from_checkpoint", "latest")))


def test_init_from_fine_tunes_a_checkpoints_networks_under_new_flags(shapes, tmp_path):
    s1 = train.main(train.parse_args(flags(shapes, tmp_path / "s1", "--max_train_steps", 2, "--use_ema")))
    init = s1 / "checkpoint-2"
    # another seed: without --init_from this run would start from other random weights
    tuned = train.main(train.parse_args(flags(shapes, tmp_path / "tuned", "--max_train_steps", 1, "--use_ema",
                                              "--kl_weight", 0.5, "--seed", 5, "--init_from", init)))
    state = json.loads((tuned / "checkpoint-1" / "state.json").read_text())
    assert state["step"] == 1 and state["init_from"]["checkpoint"] == str(init) and state["config"]["kl_weight"] == 0.5
    fresh = train.main(train.parse_args(flags(shapes, tmp_path / "fresh", "--max_train_steps", 1, "--use_ema",
                                              "--seed", 4)))

    def distance(a, b):  # over the weights; BatchNorm's running statistics jump in any first step
        return sum((a[k] - b[k]).norm() ** 2 for k in a if a[k].is_floating_point() and "running" not in k) ** 0.5
    for stem in ("generator", "discriminator", "ema"):
        start = load_file(str(init / f"{stem}.safetensors"))
        # one optimiser step away from the checkpoint's networks, not from a new random start
        near = distance(load_file(str(tuned / "checkpoint-1" / f"{stem}.safetensors")), start)
        far = distance(load_file(str(fresh / "checkpoint-1" / f"{stem}.safetensors")), start)
        assert near < 0.2 * far, stem
    # a killed fine-tune resumes from its own checkpoint, not from --init_from again
    resumed = train.main(train.parse_args(flags(shapes, tmp_path / "tuned", "--max_train_steps", 2, "--use_ema",
                                                "--kl_weight", 0.5, "--seed", 5, "--init_from", init,
                                                "--resume_from_checkpoint", "latest")))
    state = json.loads((resumed / "checkpoint-2" / "state.json").read_text())
    assert state["step"] == 2 and state["init_from"]["checkpoint"] == str(init)
    # the card holds every command that made the weights: the fine-tune's, then its parent's
    parent = json.loads((s1 / "config.json").read_text())["training"]
    again = train.main(train.parse_args(flags(shapes, tmp_path / "again", "--max_train_steps", 1, "--use_ema",
                                              "--init_from", resumed / "checkpoint-2")))
    card = (again / "README.md").read_text()
    record = json.loads((again / "config.json").read_text())["training"]["init_from"]
    assert record["steps"] == 2 and record["init_from"]["steps"] == 2 and record["init_from"]["checkpoint"] == str(init)
    assert card.count("(`--init_from`), made by:") == 2 and parent["command"] in card
    assert card.index(record["command"]) < card.index(parent["command"])
    with pytest.raises(ValueError, match="its generator does not fit this run's"):
        train.main(train.parse_args(flags(shapes, tmp_path / "s2", "--stage", 2, "--stage1_model", s1,
                                          "--max_train_steps", 1, "--init_from", init)))


def test_init_from_an_exported_model_takes_its_generator_and_a_fresh_discriminator(shapes, tmp_path):
    s1 = train.main(train.parse_args(flags(shapes, tmp_path / "s1", "--max_train_steps", 2, "--use_ema")))
    exported = StackGANPipeline.from_pretrained(s1).model
    other = tmp_path / "other-data"  # other captions: other statistics of their embeddings
    generate(other, num_images=20, seed=1, workers=1, progress=False)
    # an exported model has no D, so this run may pick another D head
    tuned = train.main(train.parse_args(flags(other, tmp_path / "tuned", "--max_train_steps", 1, "--use_ema",
                                              "--seed", 5, "--d_matching", "spatial_inner_product",
                                              "--init_from", s1)))
    fresh = train.main(train.parse_args(flags(shapes, tmp_path / "fresh", "--max_train_steps", 1, "--use_ema",
                                              "--seed", 5, "--d_matching", "spatial_inner_product")))
    start = exported.stage1.state_dict()

    def distance(a):
        return sum((a[k] - start[k]).norm() ** 2 for k in start if a[k].is_floating_point() and "running" not in k) ** 0.5
    for stem in ("generator", "ema"):
        near = distance(load_file(str(tuned / "checkpoint-1" / f"{stem}.safetensors")))
        far = distance(load_file(str(fresh / "checkpoint-1" / f"{stem}.safetensors")))
        assert near < 0.2 * far, stem
    # --d_warmup_steps: the fresh D learns while G holds still
    warm = train.main(train.parse_args(flags(other, tmp_path / "warm", "--max_train_steps", 3, "--use_ema",
                                             "--seed", 5, "--init_from", s1, "--d_warmup_steps", 2,
                                             "--checkpointing_steps", 1)))
    for step, moved in ((1, False), (2, False), (3, True)):
        g = load_file(str(warm / f"checkpoint-{step}" / "generator.safetensors"))
        assert (distance(g) > 0) == moved, step
    d1, d2 = (load_file(str(warm / f"checkpoint-{step}" / "discriminator.safetensors")) for step in (1, 2))
    assert any(not torch.equal(d1[k], d2[k]) for k in d1)  # within the warm-up
    # the text is standardised as the exported generator learnt it, after a resume too
    assert torch.equal(StackGANPipeline.from_pretrained(tuned).model.text_std, exported.text_std)
    resumed = train.main(train.parse_args(flags(other, tmp_path / "tuned", "--max_train_steps", 2, "--use_ema",
                                                "--seed", 5, "--d_matching", "spatial_inner_product",
                                                "--init_from", s1, "--resume_from_checkpoint", "latest")))
    assert torch.equal(StackGANPipeline.from_pretrained(resumed).model.text_std, exported.text_std)
    record = json.loads((tuned / "config.json").read_text())["training"]["init_from"]
    assert record["model"] == str(s1) and record["command"] == exported.training_info["command"]
    assert f"It started from `{s1}` (`--init_from`), made by:" in (tuned / "README.md").read_text()
    # a two-stage model's Stage-I fine-tune records the Stage-I run inside it
    two = type(exported)(exported.config.to_dict(), stages=2, training={"command": "stage 2", "stage1": {"command": "stage 1"}})
    assert train.parent_record("m", two, stage=1)["command"] == "stage 1"
    assert train.parent_record("m", two, stage=2)["command"] == "stage 2"
    with pytest.raises((ValueError, FileNotFoundError), match="nothing-here"):
        train.main(train.parse_args(flags(shapes, tmp_path / "s3", "--max_train_steps", 1,
                                          "--init_from", tmp_path / "nothing-here")))


def test_a_model_that_ships_its_discriminator_is_fine_tuned_against_it(shapes, tmp_path, capsys):
    from test_package_model import package_model
    from test_pipeline import fabricate_hub_cache
    from stackgan.checkpoint import load_discriminator

    s1 = train.main(train.parse_args(flags(shapes, tmp_path / "s1", "--max_train_steps", 2, "--use_ema")))
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"stages": {"stage1": {"num_samples": 4, "image_size": 16}}}))
    bundle = package_model.main(["--model", str(s1 / "checkpoint-2"), "--report", str(report),
                                 "--out", str(tmp_path / "bundle"), "--discriminator", str(s1 / "checkpoint-2")])
    shipped = load_file(str(s1 / "checkpoint-2" / "discriminator.safetensors"))
    loaded = load_discriminator(bundle, 1)
    assert loaded.keys() == shipped.keys() and all(torch.equal(loaded[k], v) for k, v in shipped.items())
    assert load_discriminator(bundle, 2) is None
    assert "Stage-I discriminator this model was trained against ships in" in (bundle / "README.md").read_text()
    # a D trained beside another generator is refused
    other = train.main(train.parse_args(flags(shapes, tmp_path / "other", "--max_train_steps", 1, "--seed", 9)))
    with pytest.raises(ValueError, match="generator is not this model's"):
        package_model.main(["--model", str(s1), "--report", str(report), "--out", str(tmp_path / "no"),
                            "--discriminator", str(other / "checkpoint-1")])
    assert not (tmp_path / "no").exists()
    (other / "checkpoint-1" / "discriminator.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match="discriminator.safetensors is not a valid safetensors file"):
        package_model.main(["--model", str(other / "checkpoint-1"), "--report", str(report),
                            "--out", str(tmp_path / "no"), "--discriminator", str(other / "checkpoint-1")])

    def distance(a, b):
        return sum((a[k] - b[k]).norm() ** 2 for k in b if b[k].is_floating_point() and "running" not in k) ** 0.5
    # under the same D flags the fine-tune's D starts from the shipped one (one step away from it)...
    same = train.main(train.parse_args(flags(shapes, tmp_path / "same", "--max_train_steps", 1, "--use_ema",
                                             "--seed", 5, "--init_from", bundle)))
    # ...under others it starts fresh, as it does from a model without one
    fresh = train.main(train.parse_args(flags(shapes, tmp_path / "fresh", "--max_train_steps", 1, "--use_ema",
                                              "--seed", 5, "--init_from", s1)))
    near = distance(load_file(str(same / "checkpoint-1" / "discriminator.safetensors")), shipped)
    far = distance(load_file(str(fresh / "checkpoint-1" / "discriminator.safetensors")), shipped)
    assert near < 0.2 * far
    capsys.readouterr()
    swapped = train.main(train.parse_args(flags(shapes, tmp_path / "swapped", "--max_train_steps", 1, "--seed", 5,
                                                "--d_matching", "spatial_inner_product", "--init_from", bundle)))
    assert (swapped / "model.safetensors").is_file()
    assert "discriminator was trained under other D flags" in capsys.readouterr().out
    # and from the Hub: the training pull fetches discriminators.safetensors with the model
    cache = tmp_path / "cache"
    repo_id = fabricate_hub_cache(bundle, cache)
    result = run(*flags(shapes, tmp_path / "hub", "--max_train_steps", 1, "--seed", 5, "--init_from", repo_id),
                 env={"HF_HUB_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"--init_from {repo_id}: D continues from the model's Stage-1 discriminator" in result.stdout + result.stderr
    hub = load_file(str(tmp_path / "hub" / "checkpoint-1" / "discriminator.safetensors"))
    assert distance(hub, shipped) < 0.2 * far


def test_train_crop_picks_the_training_view(shapes):
    args = train.parse_args(flags(shapes, "unused", "--train_crop", "center"))
    config = train.build_config(args, None)
    encoder = TextEncoder(config.text_encoder)
    centre = train.training_dataset(args, config, encoder)
    random = train.training_dataset(train.parse_args(flags(shapes, "unused")), config, encoder)
    side = centre.resolution
    top = (centre.images.shape[-1] - side) // 2
    expected = torch.from_numpy(centre.images[0, :, top:top + side, top:top + side].astype("float32")) * 2 / 255 - 1
    # every epoch sees the evaluation view of an image under "center", shifted ones under "random"
    for epoch in range(3):
        centre.set_epoch(epoch), random.set_epoch(epoch)
        assert torch.allclose(centre[0]["image"], expected, atol=1e-6)
    assert any(not torch.allclose(random[i]["image"], centre[i]["image"]) for i in range(len(random)))


def test_config_file_and_flags(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("preset: tiny\ngan_loss: hinge\ntrain_batch_size: 8\n")
    args = train.parse_args(["--config", str(config), "--train_batch_size", "2"])
    assert (args.preset, args.gan_loss, args.train_batch_size) == ("tiny", "hinge", 2)
    (tmp_path / "bad.json").write_text(json.dumps({"learning_rat": 1}))
    with pytest.raises(ValueError, match=r"bad.json: unknown option\(s\) \['learning_rat'\]"):
        train.parse_args(["--config", str(tmp_path / "bad.json")])


def test_every_model_flag_reaches_the_config():
    from stackgan import StackGANConfig
    from stackgan.config import CHOICES
    argv = [f"--{name}={allowed[-1]}" for name, allowed in CHOICES.items()]
    config = train.build_config(train.parse_args(["--preset", "tiny", *argv]), None)
    assert {name: getattr(config, name) for name in CHOICES} == {n: a[-1] for n, a in CHOICES.items()}
    fields = set(StackGANConfig.__dataclass_fields__)
    applied_elsewhere = {"preset", "text_encoder", "g_learning_rate", "d_learning_rate"}
    parsed = set(vars(train.parse_args([]))) & fields
    assert parsed - applied_elsewhere <= set(train.CONFIG_FLAGS), "a flag is parsed but never applied"


class RecordingHfApi:
    def __init__(self):
        self.uploads = []

    def create_repo(self, repo_id, repo_type, private, exist_ok):
        self.private = private

    def upload_folder(self, repo_id, repo_type, folder_path, commit_message, ignore_patterns):
        from fnmatch import fnmatch

        files = sorted(p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file())
        self.uploads.append((repo_id, [f for f in files if not any(fnmatch(f, g) for g in ignore_patterns)]))
        return "https://huggingface.co/fake/commit/1"


def test_push_to_hub_uploads_the_model_not_the_checkpoints(shapes, tmp_path, capsys):
    api = RecordingHfApi()
    token = "hf_secretsecretsecret"
    args = train.parse_args(flags(shapes, tmp_path / "push", "--max_train_steps", 2, "--checkpointing_steps", 1,
                                  "--push_to_hub", "--hub_model_id", "me/tiny", "--hub_token", token,
                                  "--hub_private_repo"))
    train.main(args, hub_api=api)
    ((repo, files),) = api.uploads
    assert repo == "me/tiny" and api.private is True
    assert {"config.json", "model.safetensors", "README.md", "samples.png"} <= set(files)
    assert not any(f.startswith(("checkpoint-", "logs/", "samples/")) for f in files)
    written = "".join(p.read_text(errors="ignore") for p in (tmp_path / "push").rglob("*") if p.is_file()
                      and p.suffix in (".json", ".jsonl", ".md"))
    assert token not in written and token not in capsys.readouterr().out


def test_two_processes(shapes, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port()), str(TRAIN), *flags(shapes, out, "--max_train_steps", 2)]
    result = subprocess.run(launch, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Total train batch size (w. parallel & accumulation) = 8" in result.stdout
    assert result.stdout.count("***** Running training *****") == 1  # only rank 0 prints
    assert StackGANPipeline.from_pretrained(out).model.training_info["steps"] == 2


def test_two_independent_processes_trap_is_refused(shapes, tmp_path):
    # WORLD_SIZE says 2 but no process group spans them: the guard must stop the run.
    result = run(*flags(shapes, tmp_path / "trap", "--max_train_steps", 1), env={"WORLD_SIZE": "2"})
    assert result.returncode != 0 and "WORLD_SIZE=2" in result.stderr


def test_collapse_warning_names_the_fix_for_each_stage():
    from stackgan import StackGANConfig
    stage1 = StackGANConfig.from_preset("shapes")
    stage2 = StackGANConfig.from_preset("shapes", stage2_image_skip=True)
    late = train.COLLAPSE_GRACE_STEPS

    message = train.collapse_warning(stage1, 1, late, 0.001)
    assert "collapsed" in message and "0.0010" in message and f"step {late}" in message
    assert "lower --kl_weight" in message
    assert "--kl_weight 0" in train.collapse_warning(stage2, 2, late, 0.002)
    # healthy KL, too early to tell, or no KL term / no CA: nothing to warn about
    assert train.collapse_warning(stage1, 1, late, 0.5) is None
    assert train.collapse_warning(stage1, 1, late - 1, 0.001) is None
    assert train.collapse_warning(StackGANConfig.from_preset("shapes", kl_weight=0.0), 2, late, 0.001) is None
    assert train.collapse_warning(StackGANConfig.from_preset("shapes", conditioning_augmentation=False),
                                  1, late, 0.0) is None


def test_mode_seeking_draws_share_the_condition_and_differ_in_z():
    from stackgan import StackGANConfig
    from stackgan.models import Stage1Generator
    config = StackGANConfig.from_preset("tiny")
    noise = train.step_noise(0, 3, 0, 4, config, draws=2)
    z, eps1, eps2 = train.batch_noise(noise, "cpu")
    assert z.shape == (8, config.z_dim) and not torch.equal(z[:4], z[4:])
    assert torch.equal(eps1[:4], eps1[4:]) and torch.equal(eps2[:4], eps2[4:])
    assert torch.equal(eps1[:4], noise[0][1]) and torch.equal(eps2[:4], noise[0][2])
    # One draw is passed through untouched.
    single = train.step_noise(0, 3, 0, 4, config, draws=1)
    assert all(torch.equal(a, b) for a, b in zip(train.batch_noise(single, "cpu"), single[0]))
    # So the two halves of one forward differ through z alone: with z equal, the images are equal.
    generator = Stage1Generator(config).eval()
    embedding = torch.randn(4, config.text_dim).repeat(2, 1)
    with torch.no_grad():
        same = generator(embedding, z[:4].repeat(2, 1), eps1)[0]
        varied = generator(embedding, z, eps1)[0]
    assert torch.equal(same[:4], same[4:]) and not torch.allclose(varied[:4], varied[4:])


def test_texture_start_makes_the_textures_visible_and_needs_them():
    from stackgan import StackGANConfig
    from stackgan.models import Stage1Generator, Stage2Generator
    config = StackGANConfig.from_preset("tiny", g_texture=True)
    torch.manual_seed(0)
    generator = Stage2Generator(config).eval()
    stage1_image, embedding = torch.rand(2, 3, 64, 64) * 2 - 1, torch.randn(2, config.text_dim)
    eps = torch.randn(2, config.condition_dim)
    h = torch.rand(2, generator.texture.gate.in_channels, 8, 8)
    c = torch.randn(2, config.condition_dim)
    with torch.no_grad():
        before = generator(stage1_image, embedding, eps)[0]
        assert generator.texture(h, c, eps).abs().max() == 0          # invisible at its start
        train.show_textures(generator, 0.05, seed=0)
        shades = generator.texture.color.bias.view(-1, 3)
        assert torch.all(shades == shades[:, :1]) and torch.allclose(shades.abs(), torch.tensor(0.05))
        assert len(set(shades[:, 0].tolist())) == 2                   # some darken, some lighten
        assert generator.texture(h, c, eps).abs().max() > 0.01
        assert not torch.allclose(generator(stage1_image, embedding, eps)[0], before)
    with pytest.raises(ValueError, match="--texture_start needs --stage 2 with --g_texture true"):
        train.show_textures(Stage1Generator(config), 0.05, seed=0)


@pytest.mark.parametrize("activation, sigma", [("leaky_logsigma", 0.1), ("leaky_logsigma", 2.0), ("relu_logvar", 1.5)])
def test_ca_sigma_restarts_sigma_and_keeps_mu(activation, sigma):
    from stackgan import StackGANConfig
    from stackgan.models import Stage2Generator
    torch.manual_seed(0)
    generator = Stage2Generator(StackGANConfig.from_preset("tiny", ca_activation=activation))
    embedding = torch.randn(6, generator.config.text_dim)
    with torch.no_grad():
        generator.ca.fc.bias.normal_()                       # a trained CA: sigma differs per caption
        _, mu_before, logvar_before = generator.ca(embedding)
        assert logvar_before.std() > 0.1
        train.restart_ca_sigma(generator, sigma)
        _, mu, logvar = generator.ca(embedding)
    assert torch.equal(mu, mu_before)
    assert torch.allclose((0.5 * logvar).exp(), torch.full_like(logvar, sigma), rtol=1e-5)


def test_ca_sigma_refuses_what_it_cannot_set():
    from stackgan import StackGANConfig
    from stackgan.models import Stage2Generator
    with pytest.raises(ValueError, match="relu_logvar CA has sigma >= 1"):
        train.restart_ca_sigma(Stage2Generator(StackGANConfig.from_preset("tiny", ca_activation="relu_logvar")), 0.5)
    with pytest.raises(ValueError, match="needs conditioning augmentation"):
        train.restart_ca_sigma(Stage2Generator(StackGANConfig.from_preset("tiny", conditioning_augmentation=False)), 0.5)
    with pytest.raises(ValueError, match="--ca_sigma must be > 0, got 0.0"):
        train.check_args(train.parse_args(["--dataset", "shapes", "--data_dir", "x", "--output_dir", "y", "--ca_sigma", "0"]))


def test_texture_lr_scale_speeds_up_the_texture_gate_on_the_caption(shapes, tmp_path):
    s1 = train.main(train.parse_args(flags(shapes, tmp_path / "s1", "--max_train_steps", 1)))
    s2 = train.main(train.parse_args(flags(shapes, tmp_path / "s2", "--stage", 2, "--stage1_model", s1,
                                           "--max_train_steps", 1, "--g_texture", "true",
                                           "--learning_rate", 1e-4, "--texture_lr_scale", 10)))
    groups = torch.load(s2 / "checkpoint-1" / "optimizers.pt", weights_only=True)["generator"]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([1e-4, 1e-3])
    assert [g["lr_scale"] for g in groups] == [1.0, 10.0]
    from stackgan import StackGANConfig
    from stackgan.models import Stage1Generator, Stage2Generator
    generator = Stage2Generator(StackGANConfig.from_preset("tiny", g_texture=True))
    slow, fast = train.generator_param_groups(generator, 10.0)
    texture = generator.texture
    assert {id(p) for p in fast["params"]} == {id(texture.gate_text.weight)}
    assert len(slow["params"]) + len(fast["params"]) == len(list(generator.parameters()))
    assert len(train.generator_param_groups(generator, 1.0)) == 1
    with pytest.raises(ValueError, match="--texture_lr_scale needs --stage 2 with --g_texture true"):
        train.generator_param_groups(Stage1Generator(StackGANConfig.from_preset("tiny")), 10.0)
    with pytest.raises(ValueError, match="--texture_lr_scale must be > 0, got 0.0"):
        train.check_args(train.parse_args(["--dataset", "shapes", "--data_dir", "x", "--output_dir", "y",
                                           "--texture_lr_scale", "0"]))


def test_ca_sigma_also_restarts_the_ema_a_checkpoint_brings(shapes, tmp_path):
    s1 = train.main(train.parse_args(flags(shapes, tmp_path / "s1", "--max_train_steps", 1, "--use_ema")))
    # G holds still (D warm-up), so the published EMA is exactly what the fine-tune started from
    tuned = train.main(train.parse_args(flags(shapes, tmp_path / "tuned", "--max_train_steps", 1, "--use_ema",
                                              "--init_from", s1 / "checkpoint-1", "--ca_sigma", 1.5,
                                              "--d_warmup_steps", 1)))
    model = StackGANPipeline.from_pretrained(tuned).model
    with torch.no_grad():
        _, _, logvar = model.stage1.ca(torch.randn(4, model.config.text_dim))
    assert torch.allclose((0.5 * logvar).exp(), torch.full_like(logvar, 1.5), rtol=1e-5)


def test_paired_loss_pulls_stage1_to_the_image_its_full_caption_names_and_resumes_exactly(shapes, tmp_path):
    with pytest.raises(ValueError, match="--paired_weight is a Stage-I loss"):
        train.main(train.parse_args(flags(shapes, tmp_path / "bad", "--stage", 2, "--paired_weight", 1.0)))
    with pytest.raises(ValueError, match="--paired_samples >= 1"):
        train.main(train.parse_args(flags(shapes, tmp_path / "bad", "--paired_weight", 1.0, "--paired_samples", 0)))

    def paired_terms(output, weight, *extra):
        out = train.main(train.parse_args(flags(shapes, output, "--paired_weight", weight, "--learning_rate", 2e-3,
                                                "--checkpointing_steps", 3, *extra)))
        log = [json.loads(line) for line in (out / "logs" / "train" / "metrics.jsonl").read_text().splitlines()]
        return out, [row["paired"] for row in log if "paired" in row]

    # the same seeds, so the same batches and noise: only the weight differs
    weighted, pulled = paired_terms(tmp_path / "weighted", 100.0, "--max_train_steps", 16)
    _, free = paired_terms(tmp_path / "free", 1e-9, "--max_train_steps", 16)
    assert len(pulled) == len(free) == 16 and pulled[0] == pytest.approx(free[0])
    # each step's batch differs, so compare step by step: over the last 8 the pulled G fits better
    assert sum(pulled[8:]) < 0.9 * sum(free[8:])
    # stopped after step 9 and resumed: the same first captions and noise, so the same weights
    paired_terms(tmp_path / "part", 100.0, "--max_train_steps", 9)
    resumed, _ = paired_terms(tmp_path / "part", 100.0, "--max_train_steps", 16, "--resume_from_checkpoint", "latest")
    tensors, again = weights(weighted)[0], weights(resumed)[0]
    assert all(torch.equal(tensors[k], again[k]) for k in tensors)


def test_paired_samples_score_the_draw_nearest_each_image():
    class Painter(torch.nn.Module):  # paints each image one grey level, set by its z
        def forward(self, embedding, z, eps):
            return torch.tanh(z[:, :1, None, None]).expand(-1, 3, 4, 4), None, None

    b, real = 6, torch.linspace(-0.9, 0.9, 6)[:, None, None, None].expand(-1, 3, 4, 4)
    noise = (torch.randn(b, 5, generator=torch.Generator().manual_seed(1)), torch.randn(b, 3), torch.randn(b, 3))
    batch = {"first_embedding": torch.full((b, 2), 3.0)}
    embedding = torch.zeros(b, 2)

    def draws(k, caption="drawn"):
        args = argparse.Namespace(paired_caption=caption, paired_samples=k, paired_weight=2.0, seed=0)
        return train.paired_inputs(Painter(), batch, embedding, real, noise, args, 7, 0, lambda e: e - 1)

    own, many = draws(1), draws(16)
    assert torch.equal(own[1], noise[0]) and torch.equal(own[2], noise[1]) and own[3] == 2.0
    error = {k: (Painter()(None, z, None)[0] - real).abs().flatten(1).amax(1) for k, (_, z, _, _) in
             ((1, own), (16, many))}
    assert (error[16] <= error[1]).all() and error[16].mean() < 0.5 * error[1].mean()
    assert torch.equal(many[1], draws(16)[1])  # seeded by (seed, step, rank)
    assert torch.equal(own[0], embedding) and torch.equal(draws(1, "first")[0], torch.full((b, 2), 2.0))


def test_refinement_loss_trains_stage2_on_spoiled_real_images_and_resumes_exactly(shapes, tmp_path):
    s1 = train.main(train.parse_args(flags(shapes, tmp_path / "s1", "--max_train_steps", 1)))
    with pytest.raises(ValueError, match="--refine_weight is a Stage-II loss"):
        train.main(train.parse_args(flags(shapes, tmp_path / "bad", "--refine_weight", 1.0)))
    common = ["--stage", 2, "--stage1_model", s1, "--refine_weight", 10.0, "--stage2_image_skip", "true",
              "--stage2_image_every_block", "true", "--checkpointing_steps", 1]
    full = train.main(train.parse_args(flags(shapes, tmp_path / "full", *common, "--max_train_steps", 2)))
    log = [json.loads(line) for line in (full / "logs" / "train" / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in log if "refine" in row]
    assert [row["step"] for row in steps] == [1, 2] and all(row["refine"] > 0 for row in steps)
    tensors, state = weights(full)
    assert state["config"]["stage2_image_every_block"] is True
    assert tensors["stage2.up.0.conv.weight"].shape[1] == 4 * state["config"]["gf_dim"] + 3
    # stopped after step 1 and resumed: the same spoiled inputs, so the same weights
    train.main(train.parse_args(flags(shapes, tmp_path / "part", *common, "--max_train_steps", 1)))
    resumed = train.main(train.parse_args(flags(shapes, tmp_path / "part", *common, "--max_train_steps", 2,
                                                "--resume_from_checkpoint", "latest")))
    again, _ = weights(resumed)
    assert all(torch.equal(tensors[k], again[k]) for k in tensors)
    # a Stage-II trained without the skip starts a run with it: its kernels, zero for the image inputs
    plain = train.main(train.parse_args(flags(shapes, tmp_path / "plain", "--stage", 2, "--stage1_model", s1,
                                              "--stage2_image_skip", "true", "--max_train_steps", 1)))
    widened = run(*flags(shapes, tmp_path / "widened", *common, "--init_from", plain, "--max_train_steps", 1,
                         "--d_warmup_steps", 1))
    assert widened.returncode == 0, widened.stderr[-2000:]
    assert "--stage2_image_every_block widens its 4 up blocks" in widened.stdout + widened.stderr
    before, after = weights(plain)[0], weights(tmp_path / "widened")[0]
    for key, value in before.items():
        if key.startswith("stage2.up.") and key.endswith(".conv.weight"):
            assert torch.equal(after[key][:, :-3], value) and not after[key][:, -3:].any(), key
        elif key.startswith("stage2.") and "running" not in key and "num_batches" not in key:
            assert torch.equal(after[key], value), key


def first_refine_term(shapes, tmp_path, s1, name, *extra) -> float:
    """The refinement term of a one-step Stage-II run on Stage-I `s1` (--refine_weight 10 + extra)."""
    out = train.main(train.parse_args(flags(shapes, tmp_path / name, "--stage", 2, "--stage1_model", s1,
                                            "--refine_weight", 10.0, "--max_train_steps", 1, *extra)))
    log = [json.loads(line) for line in (out / "logs" / "train" / "metrics.jsonl").read_text().splitlines()]
    return next(row["refine"] for row in log if "refine" in row)


def test_refine_caption_first_and_refine_loss_statistics(shapes, tmp_path):
    s1 = train.main(train.parse_args(flags(shapes, tmp_path / "s1", "--max_train_steps", 1)))
    for flag, value in (("--refine_caption", "first"), ("--refine_loss", "statistics")):
        with pytest.raises(ValueError, match=f"{flag} {value} needs --refine_weight"):
            train.main(train.parse_args(flags(shapes, tmp_path / "bad", "--stage", 2, "--stage1_model", s1, flag, value)))
    first_term = functools.partial(first_refine_term, shapes, tmp_path, s1)
    # the same batch, noise and spoiled inputs: only the caption the refinements read differs
    drawn, first = first_term("drawn"), first_term("first", "--refine_caption", "first")
    assert drawn > 0 and first > 0 and first != pytest.approx(drawn, rel=1e-6)
    assert first_term("again", "--refine_caption", "first") == pytest.approx(first, rel=1e-6)
    # ... and only the measure: each patch's statistics instead of its aligned pixels
    statistics = first_term("statistics", "--refine_loss", "statistics")
    assert statistics > 0 and statistics != pytest.approx(drawn, rel=1e-3)
