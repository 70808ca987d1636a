"""The Inception-v3 network of the TensorFlow FID code, in plain torch.

FID (Heusel et al., NeurIPS 2017) and IS (Salimans et al., NeurIPS 2016) are defined by one
network: the 2015-12-05 TensorFlow Inception graph. pytorch-fid ported its weights to
`pt_inception-2015-12-05-6726825d.pth`; this module rebuilds the architecture those weights fit
(same state-dict keys and shapes: 566 entries, 23,850,960 parameters) without torchvision, which
cannot be installed next to our CPU torch (DESIGN §6).

The TF graph differs from torchvision's Inception-v3 in three places (facts from pytorch-fid):
  * the 3x3 average pools in blocks A, C and E_1 ignore the zero padding (count_include_pad=False);
  * the pool branch of the last block (Mixed_7c) is a 3x3 max pool, not an average pool;
  * the classifier has 1008 outputs (1000 ImageNet classes + 8 unused), no auxiliary head.

The weights are never downloaded here: pass a local path, or set STACKGAN_FID_WEIGHTS.
"""

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_FILE
)
FID_WEIGHTS_ENV = "STACKGAN_FID_WEIGHTS"
INPUT_SIZE = 299
RESIZE_METHODS = ("bilinear", "bicubic-antialias")


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, as in TF) -> ReLU."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x):
    # TF's padded average pool divides by the number of real pixels, not by 9.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _max_pool_same(x):
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


class InceptionA(nn.Module):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | pool-1x1."""

    def __init__(self, in_channels, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x):
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([self.branch1x1(x), branch5x5, branch3x3dbl, branch_pool], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x):
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([self.branch3x3(x), branch3x3dbl, branch_pool], 1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (1x7 then 7x1)."""

    def __init__(self, in_channels, channels_7x7):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x):
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            branch7x7dbl = layer(branch7x7dbl)
        branch_pool = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([self.branch1x1(x), branch7x7, branch7x7dbl, branch_pool], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x):
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = x
        for layer in (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3,
                      self.branch7x7x3_4):
            branch7x7x3 = layer(branch7x7x3)
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch7x7x3, branch_pool], 1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3 / 3x1 outputs; `pool` is "avg" (Mixed_7b) or "max" (Mixed_7c)."""

    def __init__(self, in_channels, pool="avg"):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = _tf_avg_pool if pool == "avg" else _max_pool_same
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x):
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat(
            [self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1)
        branch_pool = self.branch_pool(self.pool(x))
        return torch.cat([self.branch1x1(x), branch3x3, branch3x3dbl, branch_pool], 1)


def resize_images(images, size=INPUT_SIZE, method="bilinear"):
    """Resize a float batch (B, 3, H, W) to size x size.

    "bilinear" is pytorch-fid's resize (bilinear, align_corners=False, no antialiasing): use it to
    compare with numbers computed by pytorch-fid. "bicubic-antialias" is PIL's bicubic resize
    (torch's antialiased bicubic agrees with PIL's float resize to ~1e-5), the resize clean-fid
    argues for (Parmar et al., CVPR 2022). FID values from different resizes are not comparable,
    so the method is stored with the statistics.
    """
    if method not in RESIZE_METHODS:
        raise ValueError(f"resize method {method!r} is not one of {RESIZE_METHODS}")
    if images.shape[-2:] == (size, size):
        return images
    if method == "bilinear":
        return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False,
                         antialias=True).clamp(0, 1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 as in the TF FID graph; `forward` maps images to 2048-d pool3 features.

    Args:
        resize: how images are brought to 299x299, one of RESIZE_METHODS.

    Input: float (B, 3, H, W) in [0, 1], any size. `forward` returns (B, 2048) float features;
    `classify(features)` returns the (B, 1008) logits used by the Inception Score.
    """

    feature_dim = 2048

    def __init__(self, resize="bilinear"):
        super().__init__()
        if resize not in RESIZE_METHODS:
            raise ValueError(f"resize method {resize!r} is not one of {RESIZE_METHODS}")
        self.resize = resize
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(2048, 1008)

    @property
    def name(self):
        return f"fid-inception-v3 ({FID_WEIGHTS_FILE}), resize={self.resize}"

    def forward(self, images):
        x = resize_images(images, INPUT_SIZE, self.resize)
        x = 2 * x - 1                                   # [0, 1] -> [-1, 1], as the TF graph
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)    # (B, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)    # (B, 192, 35, 35)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a,
                      self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e,
                      self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)                                # ... -> (B, 2048, 8, 8)
        return x.mean(dim=(2, 3))                       # pool3: (B, 2048)

    def classify(self, features):
        """pool3 features (B, 2048) -> logits (B, 1008); no dropout at evaluation."""
        return self.fc(features)


def resolve_fid_weights(path=None):
    """The local FID-Inception weights file: `path`, else $STACKGAN_FID_WEIGHTS.

    Raises FileNotFoundError naming the file to fetch and where to point us when none is found.
    Nothing is downloaded.
    """
    candidate = path or os.environ.get(FID_WEIGHTS_ENV)
    if candidate and Path(candidate).is_file():
        return Path(candidate)
    where = f"{candidate!r} does not exist" if candidate else f"no path given and ${FID_WEIGHTS_ENV} is unset"
    raise FileNotFoundError(
        f"FID-Inception weights not found ({where}). FID, KID and IS need {FID_WEIGHTS_FILE} "
        f"(95 MB) from {FID_WEIGHTS_URL}. Download it yourself, then pass its path "
        f"(--fid_weights PATH) or set {FID_WEIGHTS_ENV}=PATH. It is never downloaded for you."
    )


def load_fid_inception(path=None, resize="bilinear"):
    """Build FIDInceptionV3 with the TF-FID weights from a local .pth or .safetensors file.

    Args:
        path: weights file; defaults to $STACKGAN_FID_WEIGHTS (see `resolve_fid_weights`).
        resize: resize method, see `resize_images`.

    Returns the network in eval mode with gradients off. The state dict must match exactly.
    """
    path = resolve_fid_weights(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        state_dict = load_file(str(path))
    else:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    model = FIDInceptionV3(resize=resize)
    model.load_state_dict(state_dict, strict=True)
    return model.eval().requires_grad_(False)
