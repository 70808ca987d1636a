import pytest
import torch

from stackgan.refinement import degrade, patch_statistics, refinement_loss, shift_aligned_target, statistics_loss


def stripes(direction: str, phase: float = 0.0, size: int = 64) -> torch.Tensor:
    """Stripes of period 6 px as a (1, 3, size, size) image in [-1, 1]."""
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    along = xs if direction == "vertical" else ys
    return (torch.remainder(along + phase, 6) < 3).float().mul(2).sub(1).expand(1, 3, size, size).clone()


def test_any_phase_and_direction_of_a_pattern_fits_but_a_flat_colour_does_not():
    target = stripes("horizontal")
    for drawn in (stripes("horizontal", phase=2), stripes("vertical", phase=1)):
        # (the border patches cannot shift outwards: the target's edge rows are repeated there)
        assert refinement_loss(drawn, target, shift=4) < 0.1
        assert refinement_loss(drawn, target, shift=0) > 1.0  # without alignment: wrong in half the pixels  # without alignment: wrong almost everywhere
    flat = torch.zeros_like(target)
    assert refinement_loss(flat, target, shift=4) > 0.9  # the flat average is no pattern


def test_alignment_only_moves_patches_a_few_pixels():
    torch.manual_seed(0)
    target = torch.zeros(2, 3, 64, 64)
    target[:, :, 16:48, 16:48] = 1.0  # a square
    moved = torch.roll(target, shifts=(2, -3), dims=(2, 3))
    assert refinement_loss(moved, target, shift=4) < 1e-6
    far = torch.roll(target, shifts=(12, 0), dims=(2, 3))
    assert refinement_loss(far, target, shift=4) > 0.05  # an outline 12 px off is still wrong
    chosen = shift_aligned_target(moved, target, shift=4)
    assert chosen.shape == target.shape and set(chosen.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="not a multiple of the patch size 16"):
        shift_aligned_target(moved[..., :60], target[..., :60], shift=2)


def test_the_loss_trains_the_output():
    drawn = torch.zeros(1, 3, 32, 32, requires_grad=True)
    loss = refinement_loss(drawn, stripes("vertical", size=32), shift=3)
    loss.backward()
    assert drawn.grad.abs().sum() > 0


def test_degrade_is_seeded_bounded_and_spoils_outlines():
    images = torch.full((8, 3, 64, 64), -1.0)
    images[:, :, 20:44, 20:44] = 1.0
    a = degrade(images, warp=2.0, blotch=0.15, generator=torch.Generator().manual_seed(0))
    b = degrade(images, warp=2.0, blotch=0.15, generator=torch.Generator().manual_seed(0))
    c = degrade(images, warp=2.0, blotch=0.15, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -1 and a.max() <= 1 and a.shape == images.shape
    assert (a - images).abs().mean() > 0.01
    same = degrade(images, warp=0.0, blotch=0.0, generator=torch.Generator().manual_seed(0))
    # without warp and colour noise only the blurred half changes, and only near the outline
    changed = (same - images).abs().amax(dim=(1, 2, 3)) > 1e-4
    assert 0 < changed.sum() < 8
    assert torch.equal(same[:, :, 30:34, 30:34], images[:, :, 30:34, 30:34])


def test_each_patch_gets_its_nearest_candidate_in_squared_error():
    torch.manual_seed(0)
    output, target = torch.rand(2, 3, 32, 48) * 2 - 1, torch.rand(2, 3, 32, 48) * 2 - 1
    shift, patch = 3, 16
    chosen = shift_aligned_target(output, target, shift, patch)
    padded = torch.nn.functional.pad(target, (shift,) * 4, mode="replicate")
    patch_error = lambda image: (output - image).pow(2).unfold(2, patch, patch).unfold(3, patch, patch).sum(  # noqa: E731
        dim=(1, 4, 5))
    best = torch.full((2, 2, 3), float("inf"))
    for dy in range(-shift, shift):
        for dx in range(-shift, shift):
            moved = padded[:, :, shift + dy:shift + dy + 32, shift + dx:shift + dx + 48]
            tiles = moved.unfold(2, patch, patch).unfold(3, patch, patch).rot90(1, (4, 5))
            turned = tiles.permute(0, 1, 2, 4, 3, 5).reshape(moved.shape)
            best = torch.minimum(best, torch.minimum(patch_error(moved), patch_error(turned)))
    assert torch.allclose(patch_error(chosen), best, atol=1e-4)
    assert (patch_error(chosen) < patch_error(target) - 1e-3).any()  # alignment did move some patches


def checks(size: int = 64) -> torch.Tensor:
    """Checks of 4 px cells as a (1, 3, size, size) image in [-1, 1]."""
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return ((xs // 4 + ys // 4) % 2).float().mul(2).sub(1).expand(1, 3, size, size).clone()


def test_statistics_fit_any_phase_and_direction_but_not_a_flat_colour_or_another_pattern():
    target = stripes("horizontal")
    same = [statistics_loss(drawn, target) for drawn in (stripes("horizontal", phase=2), stripes("vertical", phase=1))]
    flat, other = statistics_loss(torch.zeros_like(target), target), statistics_loss(checks(), target)
    assert max(same) < 0.02 * flat.item()
    assert other > 20 * max(same) and other > 0.1 * flat   # checks are not stripes, though both are half-and-half
    assert patch_statistics(target).shape == (1, 33, 4, 4)
    tint = statistics_loss(torch.full_like(target, 0.1), torch.zeros_like(target))
    assert tint == pytest.approx(10.0 * 0.01 * 3 / 33, rel=1e-4)   # a flat tint 0.1 off: only the mean counts
    with pytest.raises(ValueError, match="not a multiple of the patch size 16"):
        patch_statistics(target[..., :60])


def test_statistics_loss_grows_a_faint_texture_towards_the_target():
    target = stripes("vertical", size=32)
    drawn = (0.05 * stripes("horizontal", phase=1, size=32)).requires_grad_(True)
    optimizer = torch.optim.Adam([drawn], lr=0.02)
    first = statistics_loss(drawn, target).item()
    for _ in range(100):
        optimizer.zero_grad()
        statistics_loss(drawn, target).backward()
        optimizer.step()
    assert statistics_loss(drawn, target).item() < 0.2 * first
