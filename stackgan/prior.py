"""The caption prior: what a caption leaves open, drawn from noise.

A caption that names two of an image's attributes fits many images. CA's Gaussian around the
caption's condition cannot choose between them: a Gaussian fitted to "a size, any of three" puts
its mass between the sizes, and the generator draws the average (on Shapes the diversity ratio
stayed at 0.45-0.55, and the entropy of what a caption leaves open was half the data's, of the
size a seventh). The prior maps a
caption's embedding and noise u to the embedding of a caption that names everything, one
completion per u, before the generators read it (DALL-E 2's prior does this for CLIP image
embeddings; Ramesh et al. 2022). It is trained by implicit maximum likelihood (Li & Malik 2018):
of K draws for a caption, only the one nearest the image's full description is pulled towards
it, so every completion in the data ends up near some draw instead of all draws at their mean.
Distances are measured where the generator reads them, in Stage-I CA's mean (`prior_loss`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class CaptionPrior(nn.Module):
    """(standardised embedding e, noise u) -> standardised embedding of a completed caption.

    e + MLP([e, u]), the MLP's last layer zero at init: an untrained prior passes every caption
    through unchanged, so adding one to a trained model changes nothing until it is trained.
    """

    def __init__(self, text_dim: int, noise_dim: int, hidden: int = 512):
        super().__init__()
        self.noise_dim, self.hidden = noise_dim, hidden
        self.net = nn.Sequential(
            nn.Linear(text_dim + noise_dim, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, text_dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def config_fields(self) -> dict:
        """The StackGANConfig fields of a model that carries this prior."""
        return {"prior_noise_dim": self.noise_dim, "prior_hidden": self.hidden}

    def forward(self, embedding: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        if u.shape != (embedding.shape[0], self.noise_dim):
            raise ValueError(f"prior noise has shape {tuple(u.shape)}; expected ({embedding.shape[0]}, "
                             f"{self.noise_dim}) (config.prior_noise_dim={self.noise_dim})")
        return embedding + self.net(torch.cat([embedding, u], dim=1))


def prior_loss(condition_mean, prior: CaptionPrior, embedding: torch.Tensor, target: torch.Tensor,
               samples: int, generator: torch.Generator | None = None,
               every: torch.Tensor | None = None) -> torch.Tensor:
    """Implicit maximum likelihood: per caption, the squared distance from the nearest of `samples`
    completions to its target, averaged.

    `condition_mean`: embedding -> the condition mean the generator reads (Stage-I CA's mu), frozen;
    `embedding` (B, text_dim): the captions; `target` (B, condition_dim): condition_mean of each
    image's full caption. Only the nearest draw gets a gradient, so draws far from this image stay
    free to cover the caption's other completions. `every` (B,) bool: captions that are their
    image's full caption, whose only completion is the target: all their draws are pulled to it
    (without this, the draws that are never nearest drift and a full caption loses what it names)."""
    b = embedding.shape[0]
    u = torch.randn(samples * b, prior.noise_dim, generator=generator).to(embedding)
    completed = condition_mean(prior(embedding.repeat(samples, 1), u))
    distance = F.mse_loss(completed, target.repeat(samples, 1), reduction="none").mean(1).view(samples, b)
    per_caption = distance.min(0).values
    if every is not None:
        per_caption = torch.where(every.to(embedding.device), distance.mean(0), per_caption)
    return per_caption.mean()
