"""The skip net's parameter-free structure (docs/methods.md, DIP): concatenation order, padding
mode, upsampling mode and BatchNorm placement, against an independent functional implementation.

The reference below is written from the per-scale description (docs/methods.md) only. It takes its
weights from the net's parameter list in definition order (skip branch, deeper branch, the
next scale, merge; the head last), so any change of structure either breaks the copy or
changes the output.
"""

import pytest
import torch
import torch.nn.functional as F

from dipddpm.nn import build_net


def reference_skip(z: torch.Tensor, params: list[torch.Tensor], skips: list[int],
                   sigmoid: bool = True) -> torch.Tensor:
    """deeper = conv s2 -> BN -> act -> conv -> BN -> act -> [next scale] -> bilinear x2;
    skip = 1x1 conv -> BN -> act; merge = concat[skip, deeper] -> BN -> conv3x3 -> BN -> act
    -> conv1x1 -> BN -> act; head 1x1 conv + sigmoid. Reflection padding, LeakyReLU(0.2)."""
    it = iter(params)

    def conv(x, stride=1):
        w, b = next(it), next(it)
        p = (w.shape[-1] - 1) // 2
        if p:
            x = F.pad(x, (p, p, p, p), mode="reflect")
        return F.conv2d(x, w, b, stride)

    def bn(x):  # train mode: batch statistics
        return F.batch_norm(x, None, None, next(it), next(it), training=True, eps=1e-5)

    def act(x):
        return F.leaky_relu(x, 0.2)

    def scale(x, i):
        skip = act(bn(conv(x))) if skips[i] else None
        deep = act(bn(conv(x, stride=2)))
        deep = act(bn(conv(deep)))
        if i + 1 < len(skips):
            deep = scale(deep, i + 1)
        deep = F.interpolate(deep, scale_factor=2, mode="bilinear", align_corners=False)
        merged = torch.cat([skip, deep], 1) if skip is not None else deep
        merged = bn(merged)
        merged = act(bn(conv(merged)))
        return act(bn(conv(merged)))

    out = conv(scale(z, 0))
    assert next(it, None) is None, "the net has parameters the reference does not use"
    return torch.sigmoid(out) if sigmoid else out


@pytest.mark.parametrize("name, in_ch, out_ch, width, depth, skips", [
    ("skip", 6, 3, 8, 3, [4, 4, 4]),
    ("skip_small", 2, 1, None, None, [0, 4, 4]),  # scales with and without a skip branch
])
def test_skip_net_matches_an_independent_implementation(name, in_ch, out_ch, width, depth,
                                                        skips):
    torch.manual_seed(0)
    net = build_net(name, in_ch, out_ch, width, depth).train()
    with torch.no_grad():  # random BN affines too, so BN placement shows in the output
        for p in net.parameters():
            p.copy_(torch.randn(p.shape) * 0.5)
    z = torch.rand(2, in_ch, 32, 32, generator=torch.Generator().manual_seed(1))
    want = reference_skip(z, [p.detach() for p in net.parameters()], skips)
    got = net(z)
    assert got.shape == (2, out_ch, 32, 32)
    assert torch.allclose(got, want, atol=1e-5)


def test_skip_net_without_sigmoid_is_the_raw_head():
    torch.manual_seed(0)
    net = build_net("skip", 4, 3, 8, 2, sigmoid=False).train()
    z = torch.rand(1, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    want = reference_skip(z, [p.detach() for p in net.parameters()], [4, 4], sigmoid=False)
    assert torch.allclose(net(z), want, atol=1e-5)
