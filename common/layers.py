"""Two small things every network here needs: compact widths and FCN's
bilinear upsampling start for a transposed convolution."""
import torch


def ch(c, width, least=1):
    """Channel count ``c`` under the width multiplier ``width`` (1 = the
    paper's network), rounded, and at least ``least``."""
    return max(least, int(round(c * width)))


def bilinear_kernel(k, s):
    """1-D weights of a stride-``s``, size-``k`` deconvolution that upsamples
    bilinearly (FCN [13] of paper 1), normalised so each output pixel's
    weights sum to 1. For k = 2s this is exact bilinear interpolation (the
    normalisation changes nothing: FCN's own filter); for k = s (paper 1's
    Table 3 B7, Table 4 D5) every output pixel sees one input pixel and it
    reduces to nearest-neighbour upsampling -- the closest "bilinear" filter
    that size allows.
    """
    f = (k + 1) // 2
    c = f - 1 if k % 2 == 1 else f - 0.5
    w = 1 - torch.abs(torch.arange(k, dtype=torch.float32) - c) / f
    return w / torch.stack([w[i % s::s].sum() for i in range(k)])


def init_deconv_bilinear(deconv):
    """Per-channel bilinear upsampling (channel i -> channel i, the outer
    product of ``bilinear_kernel``), zero bias: FCN's initialisation of a
    ``nn.ConvTranspose2d``."""
    k, s = deconv.kernel_size[0], deconv.stride[0]
    w1 = bilinear_kernel(k, s)
    with torch.no_grad():
        deconv.weight.zero_()
        for i in range(min(deconv.in_channels, deconv.out_channels)):
            deconv.weight[i, i] = torch.outer(w1, w1)
        if deconv.bias is not None:
            deconv.bias.zero_()
