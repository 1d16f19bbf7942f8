"""Adaptive weights: finite, positive, mean = mean_weight, sign flips the order."""

from __future__ import annotations

import pytest
import torch

from grait_engine.selection.reference import reference_alpha, reference_weights
from grait_engine.selection.weights import adaptive_weights, alpha_scores, unit_weights
from tests.engine.selection.synthetic import features


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("temperature,mean_weight", [(0.05, 1.0), (0.2, 0.5), (0.01, 3.0)])
def test_weights_finite_positive_with_the_requested_mean(seed, temperature, mean_weight):
    alpha = 0.3 * torch.randn(
        200, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    for sign in (-1, 1):
        w = adaptive_weights(alpha, temperature, sign, mean_weight)
        assert torch.isfinite(w).all() and (w > 0).all()
        assert w.mean().item() == pytest.approx(mean_weight, rel=1e-12)
        torch.testing.assert_close(w, reference_weights(alpha, temperature, sign, mean_weight))


def test_sign_flips_the_ordering():
    alpha = torch.tensor([0.1, -0.2, 0.3, 0.05, -0.1], dtype=torch.float64)
    down = adaptive_weights(alpha, 0.05, -1, 1.0)
    up = adaptive_weights(alpha, 0.05, 1, 1.0)
    assert torch.argsort(down).tolist() == torch.argsort(alpha, descending=True).tolist()
    assert torch.argsort(up).tolist() == torch.argsort(alpha).tolist()
    assert torch.argsort(down).tolist() == torch.argsort(up).flip(0).tolist()


def test_softmax_is_stable_for_large_logits():
    alpha = torch.tensor([30.0, 29.0, -30.0], dtype=torch.float64)
    w = adaptive_weights(alpha, 0.05, 1, 1.0)  # logits up to 600: exp overflows unshifted
    assert torch.isfinite(w).all() and w.sum().item() == pytest.approx(3.0)
    assert w[2] == 0  # exp(-1200) underflows: the stage notes it


def test_none_weighting_and_edge_cases():
    assert unit_weights(4).tolist() == [1.0] * 4
    assert adaptive_weights(torch.zeros(0, dtype=torch.float64), 0.05, -1, 1.0).numel() == 0
    assert (
        adaptive_weights(torch.zeros(3, dtype=torch.float64), 0.05, -1, 2.0).tolist() == [2.0] * 3
    )
    with pytest.raises(ValueError, match="temperature"):
        adaptive_weights(torch.zeros(3), 0.0, -1, 1.0)


def test_alpha_from_mean_features_equals_mean_similarities():
    rows = features(90, 10, 3)
    ik, idk, chosen = torch.arange(0, 30), torch.arange(30, 90), torch.tensor([31, 40, 77])
    s_ii = rows.double() @ rows.double().T
    expected = reference_alpha(s_ii[chosen][:, ik], s_ii[chosen][:, idk])
    got = alpha_scores(rows[chosen], rows[ik].double().mean(0), rows[idk].double().mean(0))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
