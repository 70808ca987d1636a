"""Inception Score (Salimans et al., NeurIPS 2016) from the logits of any classifier."""

import numpy as np
import torch


def inception_score(logits, splits=10):
    """IS = exp(E_x KL(p(y|x) || p(y))), computed on `splits` consecutive parts of the samples.

    Args:
        logits: (N, K) classifier logits (for the standard IS, the 1008 logits of
            `FIDInceptionV3.classify`); softmax is taken here, in float64.
        splits: number of parts; the original code uses 10 and reports mean and std over them.

    Returns (mean, std) over the splits. The score lies in [1, K].
    """
    logits = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    if logits.ndim != 2 or len(logits) < splits:
        raise ValueError(f"need logits (N >= splits={splits}, K), got {tuple(logits.shape)}")
    log_p_yx = torch.log_softmax(logits, dim=1)
    n = len(logits)
    scores = []
    for i in range(splits):
        # Same part boundaries as the original TF code: [i*n//splits, (i+1)*n//splits).
        part = log_p_yx[i * n // splits:(i + 1) * n // splits]
        log_p_y = torch.logsumexp(part, dim=0) - np.log(len(part))    # log mean_x p(y|x)
        kl = (part.exp() * (part - log_p_y)).sum(dim=1).mean()        # E_x KL(p(y|x) || p(y))
        scores.append(kl.exp().item())
    return float(np.mean(scores)), float(np.std(scores))
