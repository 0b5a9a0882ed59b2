"""The squeeze module T_phi: shapes, the SnS CompactRepr structure and its exact parameter count."""
import pytest
import torch
from torch import nn

from gandistill.squeeze import SqueezeModule


def expected_params(in_dims, dim, hidden, depth):
    """Independent count from the formula: laterals (C_i*hidden + hidden) + (depth-1) x
    [hidden*hidden (no bias) + 2*hidden (BN affine)] + hidden*dim + dim."""
    if depth == 0:
        return 0
    laterals = sum(c * hidden + hidden for c in in_dims)
    hidden_layers = (depth - 1) * (hidden * hidden + 2 * hidden)
    return laterals + hidden_layers + hidden * dim + dim


def test_cifar_config_shape_and_exact_parameter_count():
    T = SqueezeModule([512] * 4, dim=2048, hidden=2048, depth=3)
    n = sum(p.numel() for p in T.parameters())
    assert n == expected_params([512] * 4, 2048, 2048, 3)
    # written out once by hand for the paper's configuration: 4*(512*2048+2048) + 2*(2048^2+2*2048) + 2048^2+2048
    assert n == 4 * (512 * 2048 + 2048) + 2 * (2048 * 2048 + 4096) + 2048 * 2048 + 2048
    T.eval()
    out = T([torch.randn(3, 512) for _ in range(4)])
    assert out.shape == (3, 2048)
    assert T.out_dim == 2048


def test_layer_structure_matches_compactrepr():
    T = SqueezeModule([8, 16], dim=12, hidden=10, depth=3)
    assert [(l.in_features, l.out_features, l.bias is not None) for l in T.laterals] == [(8, 10, True), (16, 10, True)]
    kinds = [type(m) for m in T.head]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    lins = [m for m in T.head if isinstance(m, nn.Linear)]
    assert [l.bias is not None for l in lins] == [False, False, True]
    assert (lins[-1].in_features, lins[-1].out_features) == (10, 12)
    assert sum(p.numel() for p in T.parameters()) == expected_params([8, 16], 12, 10, 3)


def test_forward_is_mlp_of_summed_laterals_of_pooled_features():
    torch.manual_seed(0)
    T = SqueezeModule([4, 6], dim=5, hidden=7, depth=2).eval()
    maps = [torch.randn(3, 4, 4, 4), torch.randn(3, 6, 8, 8)]
    pooled = [m.mean(dim=(2, 3)) for m in maps]
    lat0, lat1 = T.laterals
    s = pooled[0] @ lat0.weight.T + lat0.bias + pooled[1] @ lat1.weight.T + lat1.bias
    lin1, bn, _, lin2 = T.head
    h = (s @ lin1.weight.T - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    want = torch.relu(h) @ lin2.weight.T + lin2.bias
    torch.testing.assert_close(T(maps), want)          # 4-D maps are pooled inside
    torch.testing.assert_close(T(pooled), want)        # pooled inputs pass through


def test_depth0_is_parameter_free_concatenation():
    T = SqueezeModule([3, 5], depth=0)
    assert sum(p.numel() for p in T.parameters()) == 0
    assert T.out_dim == 8
    a, b = torch.randn(4, 3), torch.randn(4, 5, 2, 2)
    torch.testing.assert_close(T([a, b]), torch.cat([a, b.mean(dim=(2, 3))], 1))


def test_depth1_is_laterals_then_one_linear():
    T = SqueezeModule([4], dim=3, hidden=6, depth=1)
    assert sum(p.numel() for p in T.parameters()) == expected_params([4], 3, 6, 1)


@pytest.mark.parametrize("bad", [[], [0, 4]])
def test_bad_in_dims(bad):
    with pytest.raises(ValueError):
        SqueezeModule(bad)


def test_wrong_inputs_are_clear():
    T = SqueezeModule([4, 6], dim=5, hidden=7, depth=2)
    with pytest.raises(ValueError, match="expected 2 feature tensors"):
        T([torch.randn(2, 4)])
    with pytest.raises(ValueError, match=r"feature 1 should be \[N, 6\]"):
        T([torch.randn(2, 4), torch.randn(2, 5)])
    with pytest.raises(ValueError, match="depth"):
        SqueezeModule([4], depth=-1)


def test_defaults_are_the_paper_config():
    # SnS CompactRepr defaults: out 2048, hidden 2048, depth 3 (2 hidden layers + the output Linear)
    T = SqueezeModule([3])
    assert T.out_dim == 2048 and T.depth == 3
    assert [type(m) for m in T.head] == [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 2 + [nn.Linear]
    assert T.head[0].in_features == 2048 and T.head[-1].out_features == 2048
    assert T.laterals[0].out_features == 2048


def test_boundaries_of_the_arguments():
    T = SqueezeModule([1], dim=1, hidden=1, depth=1)            # the smallest valid module
    assert T([torch.ones(2, 1)]).shape == (2, 1)
    assert SqueezeModule([2, 3], dim=0, hidden=0, depth=0).out_dim == 5   # depth 0 ignores dim/hidden
    with pytest.raises(ValueError, match=r"in_dims must be a non-empty list of positive channel counts, got \[4, 0\]"):
        SqueezeModule([4, 0])
    for dim, hidden in ((0, 4), (4, 0), (0, 0)):
        with pytest.raises(ValueError, match=f"dim and hidden must be positive, got dim={dim}, hidden={hidden}"):
            SqueezeModule([4], dim=dim, hidden=hidden, depth=1)


def test_every_lateral_and_the_output_layer_have_a_bias_the_hidden_ones_not():
    T = SqueezeModule([3, 5], dim=4, hidden=6, depth=3)
    assert all(lat.bias is not None for lat in T.laterals)
    assert T.head[-1].bias is not None
    assert T.head[0].bias is None and T.head[3].bias is None


def test_depth0_has_no_layers_and_says_so():
    T = SqueezeModule([3, 5], depth=0)
    assert isinstance(T.laterals, nn.ModuleList) and len(T.laterals) == 0
    assert isinstance(T.head, nn.Identity)
    assert T.extra_repr() == "in_dims=[3, 5], out_dim=8, depth=0"
    assert SqueezeModule([4], dim=5, hidden=7, depth=2).extra_repr() == "in_dims=[4], out_dim=5, depth=2"
