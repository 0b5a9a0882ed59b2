"""Students: timm backbones, CIFAR stem patch, projector layout, name errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from gandistill.students import (Student, UnknownStudentError, apply_cifar_stem, build_projector, create_student,
                                 list_students)


@pytest.fixture(scope="module")
def r18() -> Student:
    torch.manual_seed(0)
    return create_student("resnet18", img_size=32)


def test_resnet18_cifar_student_shapes_and_stem(r18):
    x = torch.randn(2, 3, 16, 16)  # small input keeps the test fast; the stem does not care
    assert r18.features(x).shape == (2, 512) and r18(x).shape == (2, 2048)
    assert r18.num_features == 512 and r18.proj_out == 2048
    conv1 = r18.backbone.conv1
    assert isinstance(conv1, nn.Conv2d) and conv1.kernel_size == (3, 3) and conv1.stride == (1, 1)
    assert isinstance(r18.backbone.maxpool, nn.Identity)
    seen = {}

    def hook(module, inputs, output):
        seen["l1"] = tuple(output.shape)

    h = r18.backbone.layer1.register_forward_hook(hook)
    try:
        r18.features(x)
    finally:
        h.remove()
    assert seen["l1"][-2:] == (16, 16)  # no down-sampling in the stem
    assert r18.config.cifar_stem is True and r18.config.name == "resnet18"


def test_projector_layout_matches_sns(r18):
    mods = list(r18.projector)
    assert len(mods) == 4 * 3 + 1
    for i in range(4):
        lin, bn, act = mods[3 * i: 3 * i + 3]
        assert isinstance(lin, nn.Linear) and lin.bias is None and lin.out_features == 512
        assert isinstance(bn, nn.BatchNorm1d) and isinstance(act, nn.ReLU)
    assert mods[0].in_features == 512
    last = mods[-1]
    assert isinstance(last, nn.Linear) and last.bias is None and (last.in_features, last.out_features) == (512, 2048)


def test_zero_init_residual(r18):
    blocks = [b for layer in (r18.backbone.layer1, r18.backbone.layer2, r18.backbone.layer3, r18.backbone.layer4)
              for b in layer]
    assert blocks and all(torch.count_nonzero(b.bn2.weight) == 0 for b in blocks)


def test_gradients_reach_the_stem(r18):
    r18.zero_grad()
    r18(torch.randn(4, 3, 8, 8)).pow(2).mean().backward()
    assert r18.backbone.conv1.weight.grad is not None and r18.backbone.conv1.weight.grad.abs().sum() > 0


def test_large_images_keep_imagenet_stem():
    s = create_student("resnet18", img_size=96, proj_layers=1, proj_out=16)
    assert s.backbone.conv1.kernel_size == (7, 7) and s.backbone.conv1.stride == (2, 2)
    assert isinstance(s.backbone.maxpool, nn.MaxPool2d) and s.config.cifar_stem is False
    assert isinstance(s.projector, nn.Sequential) and len(s.projector) == 1
    assert s(torch.randn(2, 3, 64, 64)).shape == (2, 16)


def test_deep_stem_loses_first_stride():
    s = create_student("resnet10t", img_size=32, proj_layers=0)
    first = s.backbone.conv1[0]
    assert first.stride == (1, 1) and first.kernel_size == (3, 3)
    assert isinstance(s.backbone.maxpool, nn.Identity)
    assert isinstance(s.projector, nn.Identity) and s.proj_out == s.num_features
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(s(x), s.features(x))


def test_non_resnet_family():
    s = create_student("mobilenetv3_small_050", img_size=32, proj_layers=2, proj_hidden=8, proj_out=4)
    assert s(torch.randn(2, 3, 32, 32)).shape == (2, 4) and s.config.cifar_stem is False
    with pytest.raises(ValueError, match="ResNet"):
        apply_cifar_stem(s.backbone)


def test_vit_gets_img_size():
    s = create_student("vit_tiny_patch16_224", img_size=32, proj_layers=0)
    assert s.features(torch.randn(2, 3, 32, 32)).shape == (2, s.num_features)


def test_unknown_name_lists_close_timm_names():
    with pytest.raises(KeyError) as ei:
        create_student("resnt18")
    assert "resnet18" in str(ei.value) and isinstance(ei.value, ValueError)
    with pytest.raises(UnknownStudentError, match="not a timm model"):
        create_student("definitely_not_a_model")


def test_list_students():
    names = list_students("resnet1*")
    assert "resnet18" in names and "resnet10t" in names and all(n.startswith("resnet1") for n in names)
    assert len(list_students()) > len(names)


def test_build_projector_errors():
    with pytest.raises(ValueError, match="proj_layers"):
        build_projector(8, layers=-1)
    assert isinstance(build_projector(8, layers=0), nn.Identity)


def test_forward_groups_equals_separate_passes():
    """One batched pass with per-group BN = three separate passes: outputs, gradients, running stats."""
    import copy

    torch.manual_seed(0)
    a = create_student("resnet10t", img_size=16, proj_layers=3, proj_hidden=32, proj_out=16).train()
    b = copy.deepcopy(a)
    xs = [torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16) * 2, torch.randn(3, 3, 16, 16) + 1]
    za = [a(x) for x in xs]
    zb = b.forward_groups(xs)
    for u, v in zip(za, zb):
        assert torch.allclose(u, v, atol=1e-5)
    sum((z ** 2).mean() * (i + 1) for i, z in enumerate(za)).backward()
    sum((z ** 2).mean() * (i + 1) for i, z in enumerate(zb)).backward()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5, rtol=1e-4), n
    for (n, u), v in zip(a.named_buffers(), b.buffers()):
        assert torch.allclose(u.float(), v.float(), atol=1e-6), n  # running stats and num_batches_tracked
    # a plain forward of the concatenation is different maths (one set of statistics) -- the test can fail
    whole = copy.deepcopy(a)(torch.cat(xs))
    assert not torch.allclose(whole[:4], za[0], atol=1e-3)
    # outside the call every BatchNorm is back to normal; eval mode is untouched
    assert all("forward" not in m.__dict__ for m in b.modules())
    b.eval()
    assert torch.allclose(torch.cat(b.forward_groups(xs)), b(torch.cat(xs)))
    with pytest.raises(ValueError, match="positive"):
        from gandistill.students.grouped import batch_groups

        with batch_groups(b, [4, 0]):
            pass
