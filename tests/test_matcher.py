"""The image-text matcher (stackgan/matcher.py): trained by train/train_matcher.py on real files,
saved and loaded, and used by train/train.py --matcher as a loss for G."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stackgan.matcher import ImageTextMatcher, MatcherConfig, NearestCaptions

from test_train import flags, shapes, train  # noqa: F401  (the module's Shapes fixture)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "train"))
spec = importlib.util.spec_from_file_location("train_matcher_script", ROOT / "train" / "train_matcher.py")
train_matcher = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_matcher)


@pytest.fixture(scope="module")
def matcher_folder(shapes, tmp_path_factory):
    output = tmp_path_factory.mktemp("matcher")
    train_matcher.main(["--dataset", "shapes", "--data_dir", str(shapes), "--output_dir", str(output),
                        "--preset", "tiny", "--max_train_steps", "60", "--train_batch_size", "8",
                        "--image_size", "32", "--channels", "4", "--queue", "16", "--probe_images", "4",
                        "--hard_negatives", "3"])
    return output


def test_the_matcher_learns_to_pair_training_images_with_their_captions(matcher_folder, shapes):
    report = json.loads((matcher_folder / "training.json").read_text())
    assert report["steps"] == 60 and report["args"]["hard_negatives"] == 3
    assert set(report["probe"]) == {"shape", "color", "size", "position", "pattern", "background"}
    losses = [row["loss"] for row in report["log"]]
    assert losses[-1] < losses[0]
    matcher = ImageTextMatcher.from_pretrained(matcher_folder)
    assert not any(p.requires_grad for p in matcher.parameters()) and not matcher.training
    # On the images it trained on, each image's own caption beats the other images' captions.
    from stackgan.config import StackGANConfig
    from stackgan.data import build_dataset
    from stackgan.text import TextEncoder
    dataset = build_dataset("shapes", shapes, resolution=256, wrong_image="none", crop="center",
                            encoder=TextEncoder(StackGANConfig.from_preset("tiny").text_encoder))
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    own = torch.stack([torch.as_tensor(dataset.embeddings[int(dataset.offsets[i])]) for i in range(len(dataset))])
    similarity = matcher.similarity(images, own)
    top1 = (similarity.argmax(1) == torch.arange(len(dataset))).float().mean().item()
    assert top1 > 0.5, top1   # chance: 1 / len(dataset)
    # The saved text statistics are the training captions'
    assert torch.allclose(matcher.embedding_mean, torch.as_tensor(dataset.embedding_mean))


def test_save_load_round_trip_and_clear_errors(tmp_path):
    torch.manual_seed(0)
    matcher = ImageTextMatcher(MatcherConfig(text_dim=16, image_size=32, channels=4)).eval()
    images, text = torch.rand(3, 3, 64, 64) * 2 - 1, torch.randn(5, 16)
    folder = matcher.save_pretrained(tmp_path / "m")
    loaded = ImageTextMatcher.from_pretrained(folder)
    assert torch.allclose(loaded.similarity(images, text), matcher.similarity(images, text))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        ImageTextMatcher.from_pretrained(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "channels": 8}))
    with pytest.raises(ValueError, match="does not fit"):
        ImageTextMatcher.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**config, "colour": 1}))
    with pytest.raises(ValueError, match="unknown keys \\['colour'\\]"):
        ImageTextMatcher.from_pretrained(folder)


def test_a_repeated_caption_is_not_its_own_negative():
    torch.manual_seed(0)
    matcher = ImageTextMatcher(MatcherConfig(text_dim=16, image_size=32, channels=4)).eval()
    images, a, b = torch.rand(3, 3, 32, 32) * 2 - 1, torch.randn(1, 16), torch.randn(1, 16)
    text = torch.cat([a, a, b])  # images 0 and 1 have the same caption
    logits = matcher.similarity(images, text) / matcher.config.temperature
    # Row 0 must not be pushed away from caption 1 (its own), nor row 1 from caption 0.
    expected = torch.stack([F.cross_entropy(logits[0, [0, 2]][None], torch.tensor([0])),
                            F.cross_entropy(logits[1, [1, 2]][None], torch.tensor([0])),
                            F.cross_entropy(logits[2][None], torch.tensor([2]))]).mean()
    assert torch.allclose(matcher.loss(images, text), expected)
    # Queued negatives take part, and a queued copy of a caption is masked as well: row 2's own
    # caption b comes back as the last queued one and must not count against it.
    extra = torch.randn(2, 16)
    logits = matcher.similarity(images, torch.cat([text, extra, b])) / matcher.config.temperature
    expected = torch.stack([F.cross_entropy(logits[0, [0, 2, 3, 4, 5]][None], torch.tensor([0])),
                            F.cross_entropy(logits[1, [1, 2, 3, 4, 5]][None], torch.tensor([0])),
                            F.cross_entropy(logits[2, [0, 1, 2, 3, 4]][None], torch.tensor([2]))]).mean()
    assert torch.allclose(matcher.loss(images, text, torch.cat([extra, b])), expected)


def test_nearest_captions_are_the_closest_other_captions_in_the_standardised_space():
    torch.manual_seed(0)
    pool = torch.randn(50, 8)
    mean, std = torch.randn(8), torch.rand(8) + 0.5
    nearest = NearestCaptions(pool.numpy(), mean, std)
    query = torch.cat([pool[:2], pool[2:3] * 3 + 0.01])  # two pool rows, and one scaled off the pool
    found = nearest(query, 4)
    assert found.shape == (3, 4, 8)
    unit = F.normalize((pool - mean) / std, dim=1)
    for row, q in zip(found, F.normalize((query - mean) / std, dim=1)):
        similarity = unit @ q
        ranked = [i for i in similarity.argsort(descending=True).tolist() if similarity[i] < 0.999][:4]
        assert torch.equal(row, pool[ranked])
    # A caption is never its own hard negative, nor is a copy of it.
    assert not any(torch.equal(found[0, j], pool[0]) for j in range(4))
    with pytest.raises(ValueError, match="1 <= k < 50"):
        nearest(query, 50)


def test_hard_negatives_are_each_image_s_own():
    torch.manual_seed(0)
    matcher = ImageTextMatcher(MatcherConfig(text_dim=16, image_size=32, channels=4)).eval()
    images, text, hard = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, 16), torch.randn(2, 3, 16)
    logits = matcher.similarity(images, torch.cat([text, hard.flatten(0, 1)])) / matcher.config.temperature
    # Image 0 meets captions 0, 1 and its own three hard ones (columns 2-4), not image 1's (5-7).
    expected = torch.stack([F.cross_entropy(logits[0, [0, 1, 2, 3, 4]][None], torch.tensor([0])),
                            F.cross_entropy(logits[1, [0, 1, 5, 6, 7]][None], torch.tensor([1]))]).mean()
    assert torch.allclose(matcher.loss(images, text, hard=hard), expected, atol=1e-6)


def test_train_py_adds_the_matcher_loss_to_g(matcher_folder, shapes, tmp_path):
    out = train.main(train.parse_args(flags(shapes, tmp_path / "with", "--max_train_steps", 2,
                                            "--matcher", matcher_folder, "--matcher_weight", 2.0)))
    rows = [json.loads(line) for line in (out / "logs" / "train" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "g_loss" in r]
    assert len(rows) == 2 and all(r["matcher"] > 0 for r in rows)
    plain = train.main(train.parse_args(flags(shapes, tmp_path / "without", "--max_train_steps", 2)))
    first = [json.loads(line) for line in (plain / "logs" / "train" / "metrics.jsonl").read_text().splitlines()]
    first = next(r for r in first if "g_loss" in r)
    # Same seed, same batch: G's loss differs by exactly the weighted matcher term.
    assert rows[0]["g_loss"] == pytest.approx(first["g_loss"] + rows[0]["matcher"], abs=2e-4)
    # Random training captions join the batch's as negatives: the same images then score a larger
    # InfoNCE than against the batch's captions alone.
    alone = train.main(train.parse_args(flags(shapes, tmp_path / "alone", "--max_train_steps", 1, "--matcher",
                                              matcher_folder, "--matcher_weight", 2.0, "--matcher_negatives", 0)))
    alone = next(json.loads(line) for line in (alone / "logs" / "train" / "metrics.jsonl").read_text().splitlines()
                 if "g_loss" in line)
    assert alone["matcher"] < rows[0]["matcher"]
    # Each fake's nearest captions as negatives as well: a harder test, a larger loss.
    hard = train.main(train.parse_args(flags(shapes, tmp_path / "hard", "--max_train_steps", 1, "--matcher",
                                             matcher_folder, "--matcher_weight", 2.0, "--matcher_hard_negatives", 4)))
    hard = next(json.loads(line) for line in (hard / "logs" / "train" / "metrics.jsonl").read_text().splitlines()
                if "g_loss" in line)
    assert hard["matcher"] > rows[0]["matcher"]
    with pytest.raises(ValueError, match="--matcher_hard_negatives needs --matcher"):
        train.main(train.parse_args(flags(shapes, tmp_path / "bad", "--matcher_hard_negatives", 4)))
    # Mode seeking measured in the matcher's image space: a unit vector per image, so the distance
    # of two draws (and the loss) differs from the pixels' on the same draws.
    seeking = [flags(shapes, tmp_path / space, "--max_train_steps", 1, "--matcher", matcher_folder,
                     "--mode_seeking_weight", 1.0, "--mode_seeking_space", space) for space in ("pixels", "matcher")]
    pixels, features = (next(json.loads(line) for line in (train.main(train.parse_args(f)) / "logs" / "train"
                                                           / "metrics.jsonl").read_text().splitlines()
                             if "g_loss" in line) for f in seeking)
    assert pixels["matcher"] == pytest.approx(features["matcher"], rel=1e-4)
    assert features["mode_seeking"] > 0 and abs(features["mode_seeking"] - pixels["mode_seeking"]) > 1e-3
    with pytest.raises(ValueError, match="--mode_seeking_space matcher needs --matcher"):
        train.main(train.parse_args(flags(shapes, tmp_path / "bad", "--mode_seeking_space", "matcher")))
    with pytest.raises(ValueError, match="--matcher_negatives must be >= 0"):
        train.main(train.parse_args(flags(shapes, tmp_path / "bad", "--matcher", matcher_folder,
                                          "--matcher_negatives", -1)))
    with pytest.raises(ValueError, match="--matcher_weight must be > 0"):
        train.main(train.parse_args(flags(shapes, tmp_path / "bad", "--matcher", matcher_folder,
                                          "--matcher_weight", 0)))
    with pytest.raises(FileNotFoundError, match="config.json"):
        train.main(train.parse_args(flags(shapes, tmp_path / "missing", "--max_train_steps", 1,
                                          "--matcher", tmp_path / "nowhere")))


def test_a_detail_matcher_reads_texture_and_edges_not_flat_colour(tmp_path):
    torch.manual_seed(0)
    detail = ImageTextMatcher(MatcherConfig(text_dim=16, image_size=32, channels=4, detail=True)).eval()
    plain = ImageTextMatcher(MatcherConfig(text_dim=16, image_size=32, channels=4)).eval()
    plain.load_state_dict(detail.state_dict())
    images = torch.rand(3, 3, 32, 32) * 1.4 - 0.7
    tinted = images + torch.tensor([0.2, -0.1, 0.25]).view(1, 3, 1, 1)   # the same detail, another colour
    striped = images.clone()
    striped[..., ::2, :] += 0.3
    with torch.no_grad():
        assert torch.allclose(detail.embed_images(tinted), detail.embed_images(images), atol=1e-5)
        assert not torch.allclose(plain.embed_images(tinted), plain.embed_images(images), atol=1e-3)
        assert not torch.allclose(detail.embed_images(striped), detail.embed_images(images), atol=1e-3)
    loaded = ImageTextMatcher.from_pretrained(detail.save_pretrained(tmp_path / "d"))
    assert loaded.config.detail and torch.allclose(loaded.embed_images(tinted), detail.embed_images(images), atol=1e-5)
