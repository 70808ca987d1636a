"""The training dataset and its caches: items, seeded randomness, resume, caching, statistics."""

import itertools
import json
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from stackgan.data import StackGANDataset, build_dataset, load_size


def small_dataset(**options):
    """12 images of 16x16 (each a distinct constant plus a gradient), 3 captions each, 3 classes."""
    rng = np.random.default_rng(0)
    base = np.arange(12, dtype=np.uint8)[:, None, None, None] * 20
    gradient = np.arange(16, dtype=np.uint8)[None, None, None, :]
    images = np.broadcast_to(base + gradient, (12, 3, 16, 16)).copy()
    embeddings = rng.standard_normal((36, 8)).astype(np.float32)
    offsets = np.arange(0, 37, 3)
    stats = np.stack([embeddings.mean(0), embeddings.std(0)])
    defaults = dict(labels=[i % 3 for i in range(12)], seed=0)
    return StackGANDataset(images, embeddings, offsets, stats, 12, **{**defaults, **options})


def test_items_have_the_documented_keys_shapes_and_range():
    item = small_dataset()[5]
    assert set(item) == {"image", "embedding", "wrong_image", "index"} and item["index"] == 5
    assert item["image"].shape == (3, 12, 12) and item["image"].dtype == torch.float32
    assert item["embedding"].shape == (8,) and item["embedding"].dtype == torch.float32
    assert -1 <= item["image"].min() and item["image"].max() <= 1
    assert "wrong_image" not in small_dataset(wrong_image="none")[5]


def test_first_caption_is_the_images_first_embedding_whatever_caption_is_drawn():
    dataset = small_dataset(first_caption=True)
    for index in (0, 5, 11):
        item = dataset[index]
        assert torch.equal(item["first_embedding"], torch.from_numpy(dataset.embeddings[3 * index]))
    drawn = set()
    for epoch in range(12):
        dataset.set_epoch(epoch)
        drawn.add(tuple(dataset[4]["embedding"].tolist()))
    assert len(drawn) == 3  # the drawn caption still varies; the first one is extra


def test_shapes_first_caption_names_all_six_attributes(data_shapes_dir, data_encoder, tmp_path):
    from stackgan.data.shapes.captions import parse_caption
    from stackgan.data.shapes.vocabulary import ATTRIBUTE_KEYS
    dataset = build_dataset("shapes", data_shapes_dir, 64, data_encoder, cache_dir=tmp_path, first_caption=True)
    for index in range(len(dataset)):
        assert set(parse_caption(dataset.captions[index][0])) == set(ATTRIBUTE_KEYS)
        assert torch.allclose(dataset[index]["first_embedding"],
                              torch.as_tensor(data_encoder.encode([dataset.captions[index][0]])[0]), atol=1e-5)


def test_pixels_map_to_minus_one_to_one():
    images = np.zeros((2, 3, 4, 4), np.uint8)
    images[1] = 255
    dataset = StackGANDataset(images, np.zeros((2, 2), np.float32), np.array([0, 1, 2]), np.ones((2, 2)), 4,
                              wrong_image="none")
    assert torch.all(dataset[0]["image"] == -1) and torch.all(dataset[1]["image"] == 1)


def test_randomness_is_a_function_of_seed_epoch_and_index():
    first, second = small_dataset(), small_dataset()
    for index in range(12):
        for key in ("image", "embedding", "wrong_image"):
            assert torch.equal(first[index][key], second[index][key])
    # A resumed run: a fresh dataset set to epoch 3 yields what the original yields at epoch 3.
    first.set_epoch(3)
    resumed = small_dataset()
    resumed.set_epoch(3)
    assert all(torch.equal(first[i]["image"], resumed[i]["image"]) for i in range(12))
    at_zero = small_dataset()
    assert any(not torch.equal(first[i]["image"], at_zero[i]["image"]) for i in range(12))
    other_seed = small_dataset(seed=1)
    assert any(not torch.equal(other_seed[i]["embedding"], at_zero[i]["embedding"]) for i in range(12))


def test_crop_and_flip():
    dataset = small_dataset(crop="center")
    # Centre crop of 16 -> 12: columns 2..13 of the gradient.
    assert dataset[0]["image"][0, 0, 0] == pytest.approx(2 * 2 / 255 - 1)

    def reversed_gradient(item):
        return bool(item["image"][0, 0, 0] > item["image"][0, 0, -1])

    assert not any(reversed_gradient(dataset[i]) for i in range(12))
    flipping = small_dataset(flip=True)
    assert {reversed_gradient(flipping[i]) for i in range(12)} == {True, False}
    offsets = {small_dataset()[i]["image"][0, 0, 0].item() - i * 20 * 2 / 255 for i in range(12)}
    assert len(offsets) > 1  # random crops start at different columns


def test_captions_per_step_means_distinct_captions():
    dataset = small_dataset(captions_per_step=2)
    for index in range(12):
        rows = dataset.embeddings[3 * index: 3 * index + 3]
        means = [rows[list(pair)].mean(0) for pair in itertools.combinations(range(3), 2)]
        assert any(np.allclose(dataset[index]["embedding"].numpy(), m) for m in means)
    one = small_dataset()
    assert all(any(np.array_equal(one[i]["embedding"].numpy(), r) for r in one.embeddings[3 * i: 3 * i + 3])
               for i in range(12))
    with pytest.raises(ValueError, match="captions_per_step"):
        small_dataset(captions_per_step=0)


def test_wrong_images_come_from_another_class_or_another_image():
    dataset = small_dataset()
    for epoch, index in itertools.product(range(4), range(12)):
        dataset.set_epoch(epoch)
        wrong = dataset[index]["wrong_image"]
        source = round((wrong[0].min().item() + 1) * 255 / 2 / 20)  # which image: its constant level
        assert source % 3 != index % 3
    unlabelled = small_dataset(labels=None)
    assert all(not torch.equal(unlabelled[i]["wrong_image"], unlabelled[i]["image"]) for i in range(12))
    with pytest.raises(ValueError, match="at least two classes"):
        small_dataset(labels=[0] * 12)


def test_dataloader_workers_and_pickling_give_the_same_items():
    dataset = small_dataset()
    serial = next(iter(DataLoader(dataset, batch_size=12, num_workers=0)))
    parallel = next(iter(DataLoader(dataset, batch_size=12, num_workers=2)))
    assert all(torch.equal(serial[k], parallel[k]) for k in serial)
    clone = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(clone[4]["image"], dataset[4]["image"])


def test_load_size_is_the_papers_margin():
    assert load_size(64) == 76 and load_size(256) == 304


def test_caches_are_built_once_and_rebuilt_when_the_data_changes(data_shapes_dir, data_encoder, tmp_path):
    cache = tmp_path / "cache"
    first = build_dataset("shapes", data_shapes_dir, 64, data_encoder, cache_dir=cache, workers=1)
    encoded = data_encoder.calls
    assert encoded == sum(len(c) for c in first.captions) and len(first) == 16
    assert first.flip is False  # captions name left and right
    stamp = (cache / "images_76.npy").stat().st_mtime_ns
    again = build_dataset("shapes", data_shapes_dir, 64, data_encoder, cache_dir=cache, workers=1)
    assert data_encoder.calls == encoded and (cache / "images_76.npy").stat().st_mtime_ns == stamp
    assert torch.equal(again[3]["image"], first[3]["image"])
    # Embeddings match a fresh encoding, and the statistics are over every caption of the split.
    flat = [c for group in first.captions for c in group]
    np.testing.assert_array_equal(np.asarray(first.embeddings), data_encoder.encode(flat).numpy())
    np.testing.assert_allclose(first.embedding_mean.numpy(), np.asarray(first.embeddings).mean(0), atol=1e-6)
    np.testing.assert_allclose(first.embedding_std.numpy(), np.asarray(first.embeddings).std(0), atol=1e-6)
    info = json.loads(next((cache / "embeddings").glob("*/info.json")).read_text())
    assert info["encoder_id"] == "test/hash-encoder" and info["dim"] == 16

    # Changing one caption re-encodes; a different encoder gets its own cache folder.
    copy = tmp_path / "shapes"
    (copy / "train").mkdir(parents=True)
    for path in (data_shapes_dir / "train").iterdir():
        (copy / "train" / path.name).write_bytes(path.read_bytes())
    lines = (copy / "train" / "metadata.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    record["text"][0] = "a completely new caption"
    (copy / "train" / "metadata.jsonl").write_text("\n".join([json.dumps(record)] + lines[1:]) + "\n")
    calls = data_encoder.calls
    changed = build_dataset("shapes", copy, 64, data_encoder, cache_dir=cache, workers=1)
    assert data_encoder.calls > calls and changed.captions[0][0] == "a completely new caption"
    data_encoder.model_id = "test/another-encoder"
    build_dataset("shapes", copy, 64, data_encoder, cache_dir=cache, workers=1)
    assert len(list((cache / "embeddings").iterdir())) == 2


def test_stage2_resolution_and_held_out_split(data_shapes_dir, data_encoder, tmp_path):
    dataset = build_dataset("shapes", data_shapes_dir, 256, data_encoder, split="heldout",
                            cache_dir=tmp_path, workers=2)
    assert dataset.images.shape == (4, 3, 304, 304) and dataset[0]["image"].shape == (3, 256, 256)
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        build_dataset("imagenet", data_shapes_dir, 64, data_encoder)
