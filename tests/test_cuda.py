"""The CUDA path: runs only where a GPU is present (CI machines have none; see README, Performance)."""

import copy

import pytest
import torch

from stackgan import StackGANConfig, StackGANModel, StackGANPipeline
from stackgan.losses import discriminator_objective, generator_objective
from stackgan.models import Stage1Discriminator

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


class HashEncoder:
    """A deterministic 384-d caption encoder, so the test needs no text model."""

    dim, model_id = 384, "sentence-transformers/all-MiniLM-L6-v2"

    def encode(self, captions, return_truncation=False):
        rows = [torch.Generator().manual_seed(sum(map(ord, c))) for c in captions]
        embeddings = torch.stack([torch.randn(self.dim, generator=g) for g in rows])
        return (embeddings, [False] * len(captions)) if return_truncation else embeddings


def test_cuda_pipeline_matches_cpu():
    torch.manual_seed(0)
    model = StackGANModel(StackGANConfig.from_preset("shapes").to_dict(), stages=2)
    cpu = StackGANPipeline(copy.deepcopy(model), text_encoder=HashEncoder())
    gpu = StackGANPipeline(model, text_encoder=HashEncoder()).to("cuda")
    noise = cpu.sample_noise(2, 2, seed=1)
    e, _ = cpu.encode(["a red star", "a blue circle"])
    args = (e.repeat_interleave(2, 0), *(noise[k].reshape(4, -1) for k in ("z", "eps1", "eps2")))
    for a, b in zip(cpu.generate(*args), gpu.generate(*args)):
        assert b.device.type == "cpu" and (a - b).abs().max() < 1e-3  # TF32 convolutions


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_training_step_is_finite(dtype):
    torch.manual_seed(0)
    config = StackGANConfig.from_preset("shapes")
    model = StackGANModel(config.to_dict(), stages=1).cuda()
    g, d = model.stage1.train(), Stage1Discriminator(config).cuda()
    real, e = torch.rand(8, 3, 64, 64, device="cuda") * 2 - 1, torch.randn(8, config.text_dim, device="cuda")
    z, eps = torch.randn(8, config.z_dim, device="cuda"), torch.randn(8, config.condition_dim, device="cuda")
    with torch.autocast("cuda", dtype=dtype):
        fake, mu, logvar = g(e, z, eps)
        d_loss, _ = discriminator_objective(config, d, real, fake, e, mu)
        g_loss, _ = generator_objective(config, d, fake, e, mu, logvar)
    assert fake.dtype == dtype
    (d_loss + g_loss).backward()
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    assert all(torch.isfinite(p.grad).all() for p in g.parameters() if p.grad is not None)
