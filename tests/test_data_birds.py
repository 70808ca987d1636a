"""CUB-200-2011 and Oxford-102 in the StackGAN layout, and the restricted unpickler."""

import itertools
import os
import pickle
import struct

import numpy as np
import pytest
from PIL import Image

from stackgan.data import InputErrors, build_dataset
from stackgan.data.birds import load_char_cnn_rnn, load_cub, load_oxford
from stackgan.data.preprocess import bbox_crop_box
from stackgan.data.safe_pickle import load_pickle

CUB_SPLITS = {  # class-disjoint, as in StackGAN
    "train": [("001.Black_footed_Albatross", "Black_Footed_Albatross_0001_796111", 1),
              ("001.Black_footed_Albatross", "Black_Footed_Albatross_0002_55", 1),
              ("002.Laysan_Albatross", "Laysan_Albatross_0001_545", 2)],
    "test": [("003.Sooty_Albatross", "Sooty_Albatross_0001_1071", 3),
             ("003.Sooty_Albatross", "Sooty_Albatross_0002_796395", 3)],
}
BOX = (10.0, 10.0, 20.0, 20.0)  # x, y, width, height of the red bird in every 80x60 image


def _int(value):
    return b"K" + bytes([value]) if value < 256 else b"M" + struct.pack("<H", value)


def _short_string(text):
    return b"U" + bytes([len(text)]) + text


def py2_pickle_array(array):
    """The bytes Python 2's cPickle writes (protocol 2) for a float32 array: numpy.core paths and
    a `str` payload, which Python 3 reads back only with encoding="latin1"."""
    data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    shape = b"".join(_int(d) for d in array.shape) + {1: b"\x85", 2: b"\x86", 3: b"\x87"}[array.ndim]
    return (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _short_string(b"b") + b"\x87R"
            + b"(K\x01" + shape + b"cnumpy\ndtype\n" + _short_string(b"f4") + b"K\x00K\x01\x87R"
            + b"(K\x03" + _short_string(b"<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
            + b"\x89T" + struct.pack("<i", len(data)) + data + b"tb.")


def py2_pickle_strings(strings):
    return b"\x80\x02(" + b"".join(_short_string(s.encode()) for s in strings) + b"l."


def write_image(path, size=(80, 60), box=BOX, color=(220, 20, 20)):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, (128, 128, 128))
    x, y, w, h = (int(v) for v in box)
    image.paste(color, (x, y, x + w, y + h))
    image.save(path, quality=95)


def write_pickles(split_dir, keys, classes, embeddings, python2=False):
    split_dir.mkdir(parents=True, exist_ok=True)
    if python2:
        (split_dir / "filenames.pickle").write_bytes(py2_pickle_strings(keys))
        (split_dir / "char-CNN-RNN-embeddings.pickle").write_bytes(py2_pickle_array(embeddings))
    else:
        for name, value in (("filenames", keys), ("char-CNN-RNN-embeddings", embeddings)):
            with open(split_dir / f"{name}.pickle", "wb") as f:
                pickle.dump(value, f, protocol=2)
    with open(split_dir / "class_info.pickle", "wb") as f:
        pickle.dump(classes, f, protocol=2)


def make_cub(root, python2=False):
    """A CUB tree in the StackGAN layout: Data/birds with CUB_200_2011/ extracted inside."""
    cub = root / "CUB_200_2011"
    rows = [(folder, name, label) for split in CUB_SPLITS.values() for folder, name, label in split]
    images, boxes = [], []
    for image_id, (folder, name, _) in enumerate(rows, start=1):
        write_image(cub / "images" / folder / f"{name}.jpg")
        images.append(f"{image_id} {folder}/{name}.jpg")
        boxes.append(f"{image_id} " + " ".join(str(v) for v in BOX))
        text = root / "text_c10" / folder / f"{name}.txt"
        text.parent.mkdir(parents=True, exist_ok=True)
        text.write_text("".join(f"this bird {name} has feature {k}\n" for k in range(10)))
    (cub / "images.txt").write_text("\n".join(images) + "\n")
    (cub / "bounding_boxes.txt").write_text("\n".join(boxes) + "\n")
    rng = np.random.default_rng(0)
    for split, entries in CUB_SPLITS.items():
        keys = [f"{folder}/{name}" for folder, name, _ in entries]
        write_pickles(root / split, keys, [label for *_, label in entries],
                      rng.standard_normal((len(keys), 10, 1024)).astype(np.float32), python2=python2)
    return root


CLASS_COLORS = {1: (20, 20, 220), 2: (220, 20, 20), 5: (20, 220, 20)}


def make_oxford(root):
    """An Oxford-102 tree in the StackGAN layout (Data/flowers)."""
    splits = {"train": [(1, 1), (2, 1), (3, 2)], "test": [(4, 5), (5, 5)]}
    for split, entries in splits.items():
        keys = []
        for number, label in entries:
            write_image(root / "jpg" / f"image_{number:05d}.jpg", box=(0, 0, 80, 60), color=CLASS_COLORS[label])
            text = root / "text_c10" / f"class_{label:05d}" / f"image_{number:05d}.txt"
            text.parent.mkdir(parents=True, exist_ok=True)
            text.write_text("".join(f"flower {number} petal {k}\n" for k in range(10)))
            keys.append(f"jpg/image_{number:05d}")
        write_pickles(root / split, keys, [label for _, label in entries], np.zeros((len(keys), 10, 1024), np.float32))
    return root


def test_bbox_crop_is_a_square_of_one_and_a_half_box_sides_clipped():
    # centre (30, 35), half side 0.75 * 40 = 30: x from 0 to 60, y from 5 to 65
    assert bbox_crop_box((10, 20, 40, 30), 100, 100) == (0, 5, 60, 65)
    assert bbox_crop_box((40, 40, 20, 10), 100, 100) == (35, 30, 65, 60)
    assert bbox_crop_box((80, 80, 30, 30), 100, 100) == (72, 72, 100, 100)


def test_cub_lists_split_with_boxes_classes_and_captions(tmp_path):
    root = make_cub(tmp_path / "birds")
    train = load_cub(root, "train", InputErrors())
    assert [e.key for e in train] == [f"{f}/{n}" for f, n, _ in CUB_SPLITS["train"]]
    assert [e.label for e in train] == [1, 1, 2]
    assert train[0].bbox == BOX and len(train[0].captions) == 10
    assert train[0].captions[3] == "this bird Black_Footed_Albatross_0001_796111 has feature 3"
    assert {e.label for e in load_cub(root, "test", InputErrors())} == {3}


def test_cub_cache_crops_to_the_bird(tmp_path, data_encoder):
    root = make_cub(tmp_path / "birds")
    dataset = build_dataset("cub", root, 64, data_encoder, crop="center", workers=1)
    pixel = dataset.images[0][:, 38, 38]  # the centre of the crop is the bird, not the grey image centre
    assert pixel[0] > 180 and pixel[1] < 80
    assert dataset.flip is True and dataset.embedding_id == "test/hash-encoder"


def test_python2_pickles_load_through_the_restricted_unpickler(tmp_path):
    root = make_cub(tmp_path / "birds", python2=True)
    keys = load_pickle(root / "train" / "filenames.pickle")
    assert keys[0] == "001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111"
    embeddings = load_char_cnn_rnn(root, "train")
    assert set(embeddings) == set(keys) and embeddings[keys[0]].shape == (10, 1024)
    assert embeddings[keys[0]].dtype == np.float32


def test_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "filenames.pickle"
    path.write_bytes(pickle.dumps([Exploit()], protocol=2))
    with pytest.raises(ValueError, match=r"filenames.pickle: .*refusing to load (posix|nt).system"):
        load_pickle(path)
    assert not marker.exists()


def test_char_cnn_rnn_embeddings_feed_the_dataset(tmp_path):
    root = make_cub(tmp_path / "birds")
    original = load_char_cnn_rnn(root, "train")
    dataset = build_dataset("cub", root, 64, "char-CNN-RNN", captions_per_step=4, workers=1)
    assert dataset.embedding_dim == 1024 and dataset.embedding_id == "char-CNN-RNN"
    item = dataset[1]
    rows = original[dataset.keys[1]]
    means = [rows[list(c)].mean(axis=0) for c in itertools.combinations(range(10), 4)]
    assert any(np.allclose(item["embedding"].numpy(), m, atol=1e-6) for m in means)
    with pytest.raises(ValueError, match="only for cub and oxford"):
        build_dataset("coco", root, 64, "char-CNN-RNN")


@pytest.mark.parametrize("edit, message", [
    (lambda b: b[:1], r"images.txt:2: image id 2 has no box in .*bounding_boxes.txt"),
    (lambda b: b + ["99 1 1 5 5"], r"bounding_boxes.txt:6: image id 99 is not listed in .*images.txt"),
    (lambda b: ["1 10 10 20"] + b[1:], r"bounding_boxes.txt:1: expected 5 fields"),
    (lambda b: ["1 10 10 0 20"] + b[1:], r"bounding_boxes.txt:1: box .* non-positive"),
])
def test_bbox_files_that_do_not_match_the_image_list_raise(tmp_path, edit, message):
    root = make_cub(tmp_path / "birds")
    boxes = root / "CUB_200_2011" / "bounding_boxes.txt"
    boxes.write_text("\n".join(edit(boxes.read_text().splitlines())) + "\n")
    with pytest.raises(ValueError, match=message):
        load_cub(root, "train", InputErrors())


def test_cub_skip_mode_counts_what_it_drops(tmp_path, capsys):
    root = make_cub(tmp_path / "birds")
    boxes = root / "CUB_200_2011" / "bounding_boxes.txt"
    boxes.write_text("\n".join(boxes.read_text().splitlines()[1:]) + "\n")  # no box for image 1
    (root / "text_c10" / "002.Laysan_Albatross" / "Laysan_Albatross_0001_545.txt").write_text("fine\n\nalso fine\n")
    errors = InputErrors("skip")
    examples = load_cub(root, "train", errors)
    assert [e.key.split("/")[1] for e in examples] == ["Black_Footed_Albatross_0002_55", "Laysan_Albatross_0001_545"]
    assert examples[1].captions == ("fine", "also fine")
    assert errors.counts == {"bbox mismatch": 2, "blank caption": 1}


def test_cub_class_info_must_match_filenames(tmp_path):
    root = make_cub(tmp_path / "birds")
    with open(root / "train" / "class_info.pickle", "wb") as f:
        pickle.dump([1, 2], f, protocol=2)
    with pytest.raises(ValueError, match=r"class_info.pickle holds 2 class ids but .*filenames.pickle lists 3"):
        load_cub(root, "train", InputErrors())


def test_oxford_reads_captions_from_class_folders(tmp_path, data_encoder):
    root = make_oxford(tmp_path / "flowers")
    train = load_oxford(root, "train", InputErrors())
    assert [e.key for e in train] == ["jpg/image_00001", "jpg/image_00002", "jpg/image_00003"]
    assert [e.label for e in train] == [1, 1, 2] and train[2].captions[0] == "flower 3 petal 0"
    assert train[0].bbox is None
    (root / "text_c10" / "class_00005" / "image_00004.txt").unlink()
    message = r"test/filenames.pickle \[entry 0: 'jpg/image_00004'\]: caption file .*class_00005/image_00004.txt"
    with pytest.raises(ValueError, match=message):
        load_oxford(root, "test", InputErrors())
    dataset = build_dataset("oxford", root, 64, data_encoder, workers=1)
    for epoch in range(3):
        dataset.set_epoch(epoch)
        wrong = [dataset[i]["wrong_image"].mean(dim=(1, 2)) for i in range(3)]
        assert all(w[0] > 0.5 for w in wrong[:2])  # class-1 items get the red class-2 image
        assert wrong[2][2] > 0.5  # the class-2 item gets a blue class-1 image
