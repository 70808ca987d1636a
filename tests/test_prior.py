"""The caption prior (stackgan/prior.py): what it learns, how the pipeline draws its noise, and
train/train_prior.py on real files."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stackgan import StackGANConfig, StackGANModel, StackGANPipeline
from stackgan.prior import CaptionPrior, prior_loss

from test_train import flags, shapes, train, weights  # noqa: F401  (the module's Shapes fixture)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "train"))
spec = importlib.util.spec_from_file_location("train_prior_script", ROOT / "train" / "train_prior.py")
train_prior = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_prior)


class FixedEncoder:
    """Captions -> fixed embeddings (the pipeline tests need no sentence model)."""

    def __init__(self, dim):
        self.dim = dim

    def encode(self, captions):
        return torch.stack([torch.full((self.dim,), float(len(c) % 7) - 3.0) for c in captions])


def tiny_model(prior_noise_dim=0):
    config = StackGANConfig.from_preset("tiny", text_dim=8, prior_noise_dim=prior_noise_dim, prior_hidden=16)
    torch.manual_seed(0)
    return StackGANModel(config.to_dict(), stages=2).eval()


def test_an_untrained_prior_changes_nothing():
    prior = CaptionPrior(text_dim=8, noise_dim=4, hidden=16)
    e = torch.randn(5, 8)
    assert torch.equal(prior(e, torch.randn(5, 4)), e)
    with pytest.raises(ValueError, match="prior noise has shape"):
        prior(e, torch.randn(5, 3))
    # A model given an untrained prior draws the same pixels as without one: u comes after z and eps.
    plain, with_prior = tiny_model(), tiny_model(prior_noise_dim=4)
    with_prior.load_state_dict({**with_prior.state_dict(), **plain.state_dict()})
    a = StackGANPipeline(plain, text_encoder=FixedEncoder(8))("a red square", 2, seed=5)
    b = StackGANPipeline(with_prior, text_encoder=FixedEncoder(8))("a red square", 2, seed=5)
    for x, y in zip(a.stage2[0], b.stage2[0]):
        assert np.array_equal(np.asarray(x), np.asarray(y))


def test_implicit_maximum_likelihood_covers_both_completions_and_pins_a_full_caption():
    """Caption A fits two images (targets y = +2 and y = -2); caption B names everything (one
    target). Squared error on every draw would put A's draws at their mean, y = 0."""
    torch.manual_seed(0)
    prior = CaptionPrior(text_dim=2, noise_dim=2, hidden=32)
    optimizer = torch.optim.Adam(prior.parameters(), lr=3e-3)
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    stream = torch.Generator().manual_seed(0)
    for _ in range(600):
        signs = torch.randint(0, 2, (32,), generator=stream) * 4.0 - 2.0
        embedding = torch.stack([a] * 32 + [b] * 32)
        target = torch.cat([torch.stack([torch.ones(32), signs], 1), b.expand(32, 2)])
        every = torch.tensor([False] * 32 + [True] * 32)
        loss = prior_loss(lambda e: e, prior, embedding, target, samples=8, generator=stream, every=every)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        y = prior(a.expand(400, 2), torch.randn(400, 2, generator=stream))[:, 1]
        full = prior(b.expand(400, 2), torch.randn(400, 2, generator=stream))
    assert (y > 1).float().mean() > 0.25 and (y < -1).float().mean() > 0.25, y
    assert (y.abs() < 1).float().mean() < 0.3, y
    assert (full - b).norm(dim=1).max() < 0.3


def test_the_pipeline_draws_the_prior_noise_as_conditioning():
    model = tiny_model(prior_noise_dim=4)
    torch.nn.init.normal_(model.prior.net[-1].weight)  # a prior that moves captions
    pipe = StackGANPipeline(model, text_encoder=FixedEncoder(8))
    noise = pipe.sample_noise(2, 3, seed=1)
    assert noise["u"].shape == (2, 3, 4)
    assert not torch.equal(noise["u"][0, 0], noise["u"][0, 1])
    shared = pipe.sample_noise(2, 3, seed=1, vary="noise")
    assert torch.equal(shared["u"][0, 0], shared["u"][0, 2]) and not torch.equal(shared["z"][0, 0], shared["z"][0, 2])
    fixed_z = pipe.sample_noise(2, 3, seed=1, vary="conditioning")
    assert torch.equal(fixed_z["z"][0, 0], fixed_z["z"][0, 2]) and not torch.equal(fixed_z["u"][0, 0], fixed_z["u"][0, 2])
    # With only u differing, the images differ: the prior reaches the generators.
    images = pipe("a red square", 3, seed=1, vary="conditioning", ca_mode="mean").stage1[0]
    assert not np.array_equal(np.asarray(images[0]), np.asarray(images[1]))
    with pytest.raises(ValueError, match="caption prior"):
        pipe.generate(torch.zeros(1, 8), torch.zeros(1, model.config.z_dim), torch.zeros(1, 8), torch.zeros(1, 8))


def test_a_model_with_a_prior_saves_and_loads(tmp_path):
    model = tiny_model(prior_noise_dim=4)
    torch.nn.init.normal_(model.prior.net[-1].weight)
    StackGANPipeline(model).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["config"]["prior_noise_dim"] == 4
    loaded = StackGANModel.from_pretrained(tmp_path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(ValueError, match="prior_noise_dim"):
        StackGANConfig.from_preset("tiny", prior_noise_dim=-1)


@pytest.fixture(scope="module")
def source_model(tmp_path_factory):
    """A tiny two-stage model folder with the real text encoder's width, as train.py would write."""
    folder = tmp_path_factory.mktemp("source")
    torch.manual_seed(0)
    model = StackGANModel(StackGANConfig.from_preset("tiny").to_dict(), stages=2,
                          training={"stage1": {"command": "stage-I command"}, "command": "stage-II command"})
    # A Stage-I CA that tells captions apart, as a trained one does (at init its mu is near 0).
    torch.nn.init.normal_(model.stage1.ca.fc.weight, std=0.3)
    StackGANPipeline(model).save_pretrained(folder)
    return folder


def prior_flags(source, shapes, output, *extra):
    return ["--model", str(source), "--dataset", "shapes", "--data_dir", str(shapes), "--output_dir", str(output),
            "--noise_dim", "4", "--hidden", "32", "--train_batch_size", "16", "--samples", "4",
            "--checkpointing_steps", "10", *map(str, extra)]


def test_train_prior_learns_saves_the_model_with_it_and_resumes_exactly(source_model, shapes, tmp_path):
    out = train_prior.main((prior_flags(source_model, shapes, tmp_path / "a",
                                                              "--max_train_steps", 40)))
    model = StackGANModel.from_pretrained(out)
    assert model.config.prior_noise_dim == 4 and model.prior is not None
    record = model.training_info["prior"]
    assert record["steps"] == 40 and record["command"].startswith("python train/train_prior.py --model")
    assert model.training_info["stage1"]["command"] == "stage-I command"  # the chain is kept
    card = (out / "README.md").read_text()
    assert "Its caption prior" in card and record["command"] in card
    history = json.loads((tmp_path / "a" / "checkpoint-40" / "state.json").read_text())["history"]
    assert sum(history[-10:]) < sum(history[:10])
    source = StackGANModel.from_pretrained(source_model)
    for key, value in source.state_dict().items():  # the generators are untouched
        assert torch.equal(model.state_dict()[key], value), key
    images = StackGANPipeline(model)(["a red square", "a blue circle"], 2, seed=0)
    assert len(images.stage2) == 2 and images.stage2[0][0].size == (256, 256)

    # Stopped at 20 and resumed to 40: the same prior as 40 straight.
    train_prior.main((prior_flags(source_model, shapes, tmp_path / "b", "--max_train_steps", 20)))
    resumed = train_prior.main((prior_flags(source_model, shapes, tmp_path / "b",
                                                                  "--max_train_steps", 40,
                                                                  "--resume_from_checkpoint", "latest")))
    again = StackGANModel.from_pretrained(resumed)
    for key, value in model.prior.state_dict().items():
        assert torch.equal(again.prior.state_dict()[key], value), key

    # A model that has a prior gets a new one in its place, of another size if asked.
    replaced = StackGANModel.from_pretrained(train_prior.main(prior_flags(out, shapes, tmp_path / "c",
                                                                          "--max_train_steps", 2, "--noise_dim", 2)))
    assert replaced.config.prior_noise_dim == 2 and replaced.prior.noise_dim == 2
    assert torch.equal(replaced.stage1.fc[0].weight, model.stage1.fc[0].weight)


def test_train_prior_refuses_bad_flags(source_model, shapes, tmp_path):
    with pytest.raises(SystemExit):
        train_prior.parse_args(prior_flags(source_model, shapes, tmp_path, "--samples", 0))
    with pytest.raises(ValueError, match="no checkpoint there"):
        train_prior.main((prior_flags(source_model, shapes, tmp_path, "--max_train_steps", 2,
                                                            "--resume_from_checkpoint", str(tmp_path / "nowhere"))))


def test_train_py_reads_captions_through_a_prior_and_exports_it(source_model, shapes, tmp_path):
    prior_model = train_prior.main(prior_flags(source_model, shapes, tmp_path / "prior", "--max_train_steps", 5))
    with pytest.raises(ValueError, match="has no caption prior"):
        train.main(train.parse_args(flags(shapes, tmp_path / "bad", "--max_train_steps", 1, "--prior", source_model)))

    def run(output, *extra):
        return train.main(train.parse_args(flags(shapes, output, "--max_train_steps", 4, "--checkpointing_steps", 2,
                                                 *extra)))

    completed, plain = run(tmp_path / "with", "--prior", prior_model), run(tmp_path / "without")
    exported = StackGANModel.from_pretrained(completed)
    assert exported.training_info["prior"]["model"] == str(prior_model)
    assert exported.training_info["prior"]["steps"] == 5  # the prior's own run, for the card
    carried = StackGANModel.from_pretrained(prior_model).prior.state_dict()
    assert all(torch.equal(exported.prior.state_dict()[k], v) for k, v in carried.items())
    # The same seeds and batches: only what G read differs, so G's weights do.
    ours, theirs = weights(completed)[0], weights(plain)[0]
    assert any(not torch.equal(ours[k], theirs[k]) for k in theirs if k.startswith("stage1."))
    # Stopped at step 2 and resumed: the same completions, so the same weights.
    resumed = train.main(train.parse_args(flags(shapes, tmp_path / "with", "--max_train_steps", 4,
                                                "--checkpointing_steps", 2, "--prior", prior_model,
                                                "--resume_from_checkpoint", str(tmp_path / "with" / "checkpoint-2"))))
    again = weights(resumed)[0]
    assert all(torch.equal(ours[k], again[k]) for k in ours)
