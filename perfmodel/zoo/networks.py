"""Keras 3 functional definitions of the study's networks.

Every network takes a batch-1 NHWC float32 image ``(1, H, W, 3)`` (normalised to [-1, 1]) named
``input`` and returns softmax scores ``(1, 1000)`` from a layer named ``prob``; the layer before the
softmax computes the logits, and the last weighted layer (conv or dense) is named ``classifier``.

Only operations that TensorFlow, LiteRT, ONNX Runtime and OpenCV DNN all import are used: Conv2D,
DepthwiseConv2D, ReLU / ReLU6, MaxPooling2D, GlobalAveragePooling2D, ZeroPadding2D, Concatenate, Add,
Dense, Flatten (AlexNet, VGG-11), AveragePooling2D (DenseNet transitions, Inception v3) and Softmax. Batch normalisation is
*folded* into the preceding convolution (conv with bias), which
is what an inference deployment runs anyway; Dropout is dropped (identity at inference).
Local response normalisation (GoogLeNet's two LRN layers) is omitted: it is not a Keras layer, OpenCV and
ONNX handle it differently, and it has no weights, so it does not change the parameter / MAC facts
(its few thousand element-wise operations per image are negligible next to 1.6 GMACs).

Pooling follows Caffe's ``ceil`` rounding where the original models used it (SqueezeNet, GoogLeNet, NiN,
ResNet): see :func:`_maxpool_ceil`.

The definitions are deliberately plain (no framework-specific tricks) so that the graph facts in
:mod:`perfmodel.zoo.facts` (parameters, MACs, layer counts) come out of the graph itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Bump when a definition changes: part of the export cache key.
ZOO_VERSION = "1"

INPUT_NAME = "input"
OUTPUT_NAME = "prob"
CLASSIFIER_NAME = "classifier"
NUM_CLASSES = 1000


@dataclass(frozen=True)
class NetworkSpec:
    """One network of the zoo: how to build it and what the literature says about it."""

    name: str
    title: str
    builder: Callable[[int], Any] = field(repr=False)
    input_size: int
    min_input_size: int
    top1: float
    top5: float
    accuracy_source: str
    accuracy_note: str = ""
    description: str = ""
    accuracy_ref: str = ""  #: short form of ``accuracy_source`` for tables

    def build(self, input_size: int | None = None) -> Any:
        """The Keras model with Keras' default (unseeded) initial weights; see :func:`build_keras`."""
        return self.builder(input_size or self.input_size)


# ----------------------------------------------------------------------------------------- helpers


def _layers():
    import keras

    return keras.layers


def _conv(x, filters: int, k: int, name: str, stride: int = 1, pad: int | None = None,
          act: str | None = "relu"):
    """Conv2D (+ bias, folded BN) with symmetric zero padding ``pad`` (default ``(k-1)//2``) and activation.

    Stride-1 convolutions with ``pad == (k-1)//2`` use ``padding="same"`` (symmetric for odd kernels);
    other padded convolutions get an explicit symmetric ZeroPadding2D, as in Caffe/PyTorch, rather than
    TensorFlow's asymmetric ``same`` for strided convolutions.
    """
    L = _layers()
    pad = (k - 1) // 2 if pad is None else pad
    padding = "valid"
    if pad and stride == 1 and k % 2 == 1 and pad == (k - 1) // 2:
        padding = "same"
    elif pad:
        x = L.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    x = L.Conv2D(filters, k, strides=stride, padding=padding, use_bias=True, name=name)(x)
    return _act(x, act, name)


def _dwconv(x, k: int, name: str, stride: int = 1, act: str | None = "relu6"):
    """DepthwiseConv2D (multiplier 1, + bias) with symmetric padding ``(k-1)//2``."""
    L = _layers()
    pad = (k - 1) // 2
    padding = "same" if stride == 1 else "valid"
    if stride != 1 and pad:
        x = L.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    x = L.DepthwiseConv2D(k, strides=stride, padding=padding, use_bias=True, name=name)(x)
    return _act(x, act, name)


def _act(x, act: str | None, name: str):
    L = _layers()
    if act == "relu":
        return L.ReLU(name=f"{name}_relu")(x)
    if act == "relu6":
        return L.Activation("relu6", name=f"{name}_relu6")(x)
    if act is None:
        return x
    raise ValueError(f"unsupported activation {act!r}")


def _maxpool_ceil(x, k: int, s: int, name: str):
    """Max pooling with Caffe's ``ceil`` output rounding, using only valid / same pooling.

    Output size ``ceil((n - k) / s) + 1``. When that equals the floor size, plain ``valid`` pooling;
    when TensorFlow's ``same`` gives the same size with the single padding row at the end, ``same``;
    otherwise zero padding at the end followed by ``valid`` pooling, which is exact because every
    pooled tensor here follows a ReLU (values >= 0, so a zero pad never wins the max).
    """
    L = _layers()
    n = int(x.shape[1])
    if int(x.shape[2]) != n:
        raise ValueError("square inputs only")
    out_floor = (n - k) // s + 1
    out_ceil = -(-(n - k) // s) + 1
    if out_ceil == out_floor:
        return L.MaxPooling2D(k, s, padding="valid", name=name)(x)
    need = (out_ceil - 1) * s + k - n
    same_out = -(-n // s)
    if same_out == out_ceil and need == 1:
        return L.MaxPooling2D(k, s, padding="same", name=name)(x)
    x = L.ZeroPadding2D(((0, need), (0, need)), name=f"{name}_pad")(x)
    return L.MaxPooling2D(k, s, padding="valid", name=name)(x)


def _input(size: int, min_size: int, network: str):
    import keras

    if size < min_size:
        from perfmodel.errors import PerfmodelError

        raise PerfmodelError(f"input size {size} is too small for {network} (minimum {min_size})")
    return keras.Input(shape=(size, size, 3), batch_size=1, dtype="float32", name=INPUT_NAME)


def _head_gap_softmax(x, dense: bool):
    """Global average pooling then (optionally) the dense classifier, then softmax ``prob``."""
    L = _layers()
    x = L.GlobalAveragePooling2D(name="gap")(x)
    if dense:
        x = L.Dense(NUM_CLASSES, name=CLASSIFIER_NAME)(x)
    x = L.Softmax(name=OUTPUT_NAME)(x)
    return x


def _head_fc(x):
    """AlexNet / VGG classifier: flatten, FC-6 4096 + ReLU, FC-7 4096 + ReLU, the dense classifier, softmax."""
    L = _layers()
    x = L.Flatten(name="flatten")(x)
    for fc in ("fc6", "fc7"):
        x = L.ReLU(name=f"{fc}_relu")(L.Dense(4096, name=fc)(x))
    x = L.Dense(NUM_CLASSES, name=CLASSIFIER_NAME)(x)
    return L.Softmax(name=OUTPUT_NAME)(x)


def _model(inp, out, name: str):
    import keras

    return keras.Model(inp, out, name=name)


# ---------------------------------------------------------------------------------------- networks


def _fire(x, squeeze: int, expand: int, name: str):
    """SqueezeNet's Fire module: squeeze 1x1, then expand 1x1 and 3x3 concatenated."""
    s = _conv(x, squeeze, 1, f"{name}_squeeze1x1")
    e1 = _conv(s, expand, 1, f"{name}_expand1x1")
    e3 = _conv(s, expand, 3, f"{name}_expand3x3")
    return _layers().Concatenate(axis=-1, name=f"{name}_concat")([e1, e3])


def _squeezenet(size: int, name: str, min_size: int, conv1: tuple[int, int], pool_after: tuple[int, int]):
    """SqueezeNet: conv1 (filters, kernel) stride 2, pool, Fire modules 2-9 with a pool after the two named,
    conv classifier + ReLU, global average pool: 26 conv, 0 FC."""
    inp = _input(size, min_size, name)
    x = _conv(inp, conv1[0], conv1[1], "conv1", stride=2, pad=0)
    x = _maxpool_ceil(x, 3, 2, "pool1")
    for i, (squeeze, expand) in enumerate(((16, 64), (16, 64), (32, 128), (32, 128), (48, 192), (48, 192),
                                           (64, 256), (64, 256)), start=2):
        x = _fire(x, squeeze, expand, f"fire{i}")
        if i in pool_after:
            x = _maxpool_ceil(x, 3, 2, f"pool{i}")
    x = _conv(x, NUM_CLASSES, 1, CLASSIFIER_NAME)  # conv10 + ReLU
    return _model(inp, _head_gap_softmax(x, dense=False), name)


def _squeezenet1_1(size: int):
    """SqueezeNet v1.1 (Iandola et al. 2016; the DeepScale Caffe release): 3x3/64 conv1, pools after fire3, fire5."""
    return _squeezenet(size, "squeezenet1_1", 67, (64, 3), (3, 5))


def _googlenet(size: int):
    """GoogLeNet / Inception v1 (Szegedy et al. 2015), no auxiliary heads, no LRN: 57 conv, 1 FC."""
    L = _layers()
    inp = _input(size, 64, "googlenet")

    def inception(x, c1, c3r, c3, c5r, c5, pp, name):
        b1 = _conv(x, c1, 1, f"{name}_1x1")
        b2 = _conv(_conv(x, c3r, 1, f"{name}_3x3_reduce"), c3, 3, f"{name}_3x3")
        b3 = _conv(_conv(x, c5r, 1, f"{name}_5x5_reduce"), c5, 5, f"{name}_5x5")
        b4 = L.MaxPooling2D(3, 1, padding="same", name=f"{name}_pool")(x)
        b4 = _conv(b4, pp, 1, f"{name}_pool_proj")
        return L.Concatenate(axis=-1, name=f"{name}_output")([b1, b2, b3, b4])

    x = _conv(inp, 64, 7, "conv1_7x7_s2", stride=2, pad=3)
    x = _maxpool_ceil(x, 3, 2, "pool1_3x3_s2")
    x = _conv(x, 64, 1, "conv2_3x3_reduce")
    x = _conv(x, 192, 3, "conv2_3x3")
    x = _maxpool_ceil(x, 3, 2, "pool2_3x3_s2")
    x = inception(x, 64, 96, 128, 16, 32, 32, "inception_3a")
    x = inception(x, 128, 128, 192, 32, 96, 64, "inception_3b")
    x = _maxpool_ceil(x, 3, 2, "pool3_3x3_s2")
    x = inception(x, 192, 96, 208, 16, 48, 64, "inception_4a")
    x = inception(x, 160, 112, 224, 24, 64, 64, "inception_4b")
    x = inception(x, 128, 128, 256, 24, 64, 64, "inception_4c")
    x = inception(x, 112, 144, 288, 32, 64, 64, "inception_4d")
    x = inception(x, 256, 160, 320, 32, 128, 128, "inception_4e")
    x = _maxpool_ceil(x, 3, 2, "pool4_3x3_s2")
    x = inception(x, 256, 160, 320, 32, 128, 128, "inception_5a")
    x = inception(x, 384, 192, 384, 48, 128, 128, "inception_5b")
    return _model(inp, _head_gap_softmax(x, dense=True), "googlenet")


def _resnet50(size: int):
    """ResNet-50 v1 (He et al. 2016; stride 2 in the first 1x1 conv of a stage): 53 conv, 1 FC."""
    L = _layers()
    inp = _input(size, 32, "resnet50")

    def bottleneck(x, width: int, stride: int, project: bool, name: str):
        shortcut = x
        if project:
            shortcut = _conv(x, 4 * width, 1, f"{name}_branch1", stride=stride, act=None)
        y = _conv(x, width, 1, f"{name}_branch2a", stride=stride)
        y = _conv(y, width, 3, f"{name}_branch2b")
        y = _conv(y, 4 * width, 1, f"{name}_branch2c", act=None)
        y = L.Add(name=f"{name}_add")([shortcut, y])
        return L.ReLU(name=f"{name}_relu")(y)

    x = _conv(inp, 64, 7, "conv1", stride=2, pad=3)
    x = _maxpool_ceil(x, 3, 2, "pool1")
    for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=2):
        for b in range(blocks):
            stride = 2 if (b == 0 and stage > 2) else 1
            x = bottleneck(x, width, stride, project=(b == 0), name=f"res{stage}{chr(ord('a') + b)}")
    return _model(inp, _head_gap_softmax(x, dense=True), "resnet50")


def _mobilenet_v1(size: int):
    """MobileNet v1, width 1.0 (Howard et al. 2017), ReLU6 as in the TensorFlow release: 27 conv, 1 FC."""
    inp = _input(size, 32, "mobilenet_v1")
    x = _conv(inp, 32, 3, "conv1", stride=2, act="relu6")
    cfg = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    for i, (filters, stride) in enumerate(cfg, start=1):
        x = _dwconv(x, 3, f"conv_dw_{i}", stride=stride)
        x = _conv(x, filters, 1, f"conv_pw_{i}", act="relu6")
    return _model(inp, _head_gap_softmax(x, dense=True), "mobilenet_v1")


def _mobilenet_v2(size: int):
    """MobileNet v2, width 1.0 (Sandler et al. 2018): inverted residuals, linear bottlenecks; 52 conv, 1 FC."""
    L = _layers()
    inp = _input(size, 32, "mobilenet_v2")
    x = _conv(inp, 32, 3, "conv1", stride=2, act="relu6")
    in_ch = 32
    block = 0
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(n):
            stride = s if i == 0 else 1
            name = f"block_{block}"
            y = x
            if t != 1:
                y = _conv(y, in_ch * t, 1, f"{name}_expand", act="relu6")
            y = _dwconv(y, 3, f"{name}_depthwise", stride=stride)
            y = _conv(y, c, 1, f"{name}_project", act=None)
            if stride == 1 and in_ch == c:
                y = L.Add(name=f"{name}_add")([x, y])
            x = y
            in_ch = c
            block += 1
    x = _conv(x, 1280, 1, "conv_last", act="relu6")
    return _model(inp, _head_gap_softmax(x, dense=True), "mobilenet_v2")


def _nin(size: int):
    """Network-in-Network, ImageNet model of the Caffe Model Zoo (Lin et al. 2014): 12 conv, 0 FC."""
    inp = _input(size, 99, "nin")
    x = _conv(inp, 96, 11, "conv1", stride=4, pad=0)
    x = _conv(x, 96, 1, "cccp1")
    x = _conv(x, 96, 1, "cccp2")
    x = _maxpool_ceil(x, 3, 2, "pool1")
    x = _conv(x, 256, 5, "conv2", pad=2)
    x = _conv(x, 256, 1, "cccp3")
    x = _conv(x, 256, 1, "cccp4")
    x = _maxpool_ceil(x, 3, 2, "pool2")
    x = _conv(x, 384, 3, "conv3", pad=1)
    x = _conv(x, 384, 1, "cccp5")
    x = _conv(x, 384, 1, "cccp6")
    x = _maxpool_ceil(x, 3, 2, "pool3")
    x = _conv(x, 1024, 3, "conv4_1024", pad=1)
    x = _conv(x, 1024, 1, "cccp7_1024")
    x = _conv(x, NUM_CLASSES, 1, CLASSIFIER_NAME)  # cccp8 + ReLU
    return _model(inp, _head_gap_softmax(x, dense=False), "nin")


def _squeezenet1_0(size: int):
    """SqueezeNet v1.0 (Iandola et al. 2016): 7x7/96 conv1, pools after fire4 and fire8."""
    return _squeezenet(size, "squeezenet1_0", 99, (96, 7), (4, 8))


def _resnet18(size: int):
    """ResNet-18 (He et al. 2016): basic residual blocks [2, 2, 2, 2]; 20 conv (incl. 3 projections), 1 FC."""
    L = _layers()
    inp = _input(size, 32, "resnet18")

    def basic(x, width: int, stride: int, project: bool, name: str):
        shortcut = x
        if project:
            shortcut = _conv(x, width, 1, f"{name}_downsample", stride=stride, act=None)
        y = _conv(x, width, 3, f"{name}_conv1", stride=stride)
        y = _conv(y, width, 3, f"{name}_conv2", act=None)
        y = L.Add(name=f"{name}_add")([shortcut, y])
        return L.ReLU(name=f"{name}_relu")(y)

    x = _conv(inp, 64, 7, "conv1", stride=2, pad=3)
    x = _maxpool_ceil(x, 3, 2, "pool1")  # torchvision: pad 1 floor == Caffe ceil for 112 -> 56
    for stage, width in enumerate((64, 128, 256, 512), start=1):
        for b in range(2):
            stride = 2 if (b == 0 and stage > 1) else 1
            x = basic(x, width, stride, project=(b == 0 and stage > 1), name=f"layer{stage}_{b}")
    return _model(inp, _head_gap_softmax(x, dense=True), "resnet18")


def _alexnet(size: int):
    """AlexNet, torchvision's single-tower variant (64/192/384/256/256 filters): 5 conv, 3 FC, 61 M params."""
    L = _layers()
    if size != 224:
        from perfmodel.errors import PerfmodelError

        raise PerfmodelError("alexnet has fully connected layers sized for 224x224 input (6x6x256 features); "
                             f"input size {size} is not supported")
    inp = _input(size, 224, "alexnet")
    x = _conv(inp, 64, 11, "conv1", stride=4, pad=2)
    x = L.MaxPooling2D(3, 2, padding="valid", name="pool1")(x)
    x = _conv(x, 192, 5, "conv2")
    x = L.MaxPooling2D(3, 2, padding="valid", name="pool2")(x)
    x = _conv(x, 384, 3, "conv3")
    x = _conv(x, 256, 3, "conv4")
    x = _conv(x, 256, 3, "conv5")
    x = L.MaxPooling2D(3, 2, padding="valid", name="pool5")(x)
    return _model(inp, _head_fc(x), "alexnet")


def _densenet121(size: int):
    """DenseNet-121 (Huang et al. 2017), growth 32, blocks [6, 12, 24, 16]: 120 conv, 1 FC.

    The pre-activation BN of every layer is folded as a conv bias followed by ReLU (conv -> ReLU order
    instead of BN-ReLU-conv: the same operations and MACs with random weights). Transitions average-pool.
    """
    L = _layers()
    inp = _input(size, 32, "densenet121")
    x = _conv(inp, 64, 7, "conv0", stride=2, pad=3)
    x = _maxpool_ceil(x, 3, 2, "pool0")
    channels = 64
    for b, n in enumerate((6, 12, 24, 16), start=1):
        for i in range(1, n + 1):
            y = _conv(x, 128, 1, f"denseblock{b}_layer{i}_conv1")
            y = _conv(y, 32, 3, f"denseblock{b}_layer{i}_conv2")
            x = L.Concatenate(axis=-1, name=f"denseblock{b}_layer{i}_concat")([x, y])
            channels += 32
        if b < 4:
            channels //= 2
            x = _conv(x, channels, 1, f"transition{b}_conv")
            x = L.AveragePooling2D(2, 2, padding="valid", name=f"transition{b}_pool")(x)
    return _model(inp, _head_gap_softmax(x, dense=True), "densenet121")


def _vgg11(size: int):
    """VGG-11 (Simonyan & Zisserman 2015, configuration A; torchvision's ``vgg11``): 8 conv, 3 FC, 133 M params.

    Max pools 2x2/2 after conv1, conv2, conv4, conv6, conv8; the classifier's FC-6 takes the 7x7x512
    features of a 224x224 input (102.8 M of the parameters), so the input size is fixed.
    """
    L = _layers()
    if size != 224:
        from perfmodel.errors import PerfmodelError

        raise PerfmodelError("vgg11 has fully connected layers sized for 224x224 input (7x7x512 features); "
                             f"input size {size} is not supported")
    inp = _input(size, 224, "vgg11")
    x = inp
    n = 0
    for block, (width, convs) in enumerate(((64, 1), (128, 1), (256, 2), (512, 2), (512, 2)), start=1):
        for _ in range(convs):
            n += 1
            x = _conv(x, width, 3, f"conv{n}")
        x = L.MaxPooling2D(2, 2, padding="valid", name=f"pool{block}")(x)
    return _model(inp, _head_fc(x), "vgg11")


def _conv_hw(x, filters: int, kh: int, kw: int, name: str):
    """Stride-1 Conv2D with an ``kh x kw`` kernel (odd sides), symmetric ``same`` padding, bias, ReLU."""
    x = _layers().Conv2D(filters, (kh, kw), padding="same", use_bias=True, name=name)(x)
    return _act(x, "relu", name)


def _avgpool3_same(x, name: str):
    """3x3 / stride 1 average pool with one zero row / column each side counted (torchvision's default)."""
    L = _layers()
    x = L.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return L.AveragePooling2D(3, 1, padding="valid", name=name)(x)


def _inception_v3(size: int):
    """Inception v3 (Szegedy et al. 2016; torchvision's ``inception_v3`` graph without the auxiliary head).

    BN folded into conv biases; modules Mixed_5b-5d (A), 6a (B), 6b-6e (C, factorised 1x7 / 7x1), 7a (D),
    7b-7c (E); 94 conv, 1 FC, ~5.7 GMACs at 299x299.
    """
    L = _layers()
    inp = _input(size, 75, "inception_v3")

    def mod_a(x, pool_features, name):
        b1 = _conv(x, 64, 1, f"{name}_1x1")
        b5 = _conv(_conv(x, 48, 1, f"{name}_5x5_1"), 64, 5, f"{name}_5x5_2")
        b3 = _conv(_conv(_conv(x, 64, 1, f"{name}_3x3dbl_1"), 96, 3, f"{name}_3x3dbl_2"), 96, 3,
                   f"{name}_3x3dbl_3")
        bp = _conv(_avgpool3_same(x, f"{name}_pool"), pool_features, 1, f"{name}_pool_proj")
        return L.Concatenate(axis=-1, name=f"{name}_concat")([b1, b5, b3, bp])

    def mod_b(x, name):
        b3 = _conv(x, 384, 3, f"{name}_3x3", stride=2, pad=0)
        bd = _conv(_conv(_conv(x, 64, 1, f"{name}_3x3dbl_1"), 96, 3, f"{name}_3x3dbl_2"), 96, 3,
                   f"{name}_3x3dbl_3", stride=2, pad=0)
        bp = L.MaxPooling2D(3, 2, padding="valid", name=f"{name}_pool")(x)
        return L.Concatenate(axis=-1, name=f"{name}_concat")([b3, bd, bp])

    def mod_c(x, c7, name):
        b1 = _conv(x, 192, 1, f"{name}_1x1")
        b7 = _conv(x, c7, 1, f"{name}_7x7_1")
        b7 = _conv_hw(b7, c7, 1, 7, f"{name}_7x7_2")
        b7 = _conv_hw(b7, 192, 7, 1, f"{name}_7x7_3")
        bd = _conv(x, c7, 1, f"{name}_7x7dbl_1")
        bd = _conv_hw(bd, c7, 7, 1, f"{name}_7x7dbl_2")
        bd = _conv_hw(bd, c7, 1, 7, f"{name}_7x7dbl_3")
        bd = _conv_hw(bd, c7, 7, 1, f"{name}_7x7dbl_4")
        bd = _conv_hw(bd, 192, 1, 7, f"{name}_7x7dbl_5")
        bp = _conv(_avgpool3_same(x, f"{name}_pool"), 192, 1, f"{name}_pool_proj")
        return L.Concatenate(axis=-1, name=f"{name}_concat")([b1, b7, bd, bp])

    def mod_d(x, name):
        b3 = _conv(_conv(x, 192, 1, f"{name}_3x3_1"), 320, 3, f"{name}_3x3_2", stride=2, pad=0)
        b7 = _conv(x, 192, 1, f"{name}_7x7x3_1")
        b7 = _conv_hw(b7, 192, 1, 7, f"{name}_7x7x3_2")
        b7 = _conv_hw(b7, 192, 7, 1, f"{name}_7x7x3_3")
        b7 = _conv(b7, 192, 3, f"{name}_7x7x3_4", stride=2, pad=0)
        bp = L.MaxPooling2D(3, 2, padding="valid", name=f"{name}_pool")(x)
        return L.Concatenate(axis=-1, name=f"{name}_concat")([b3, b7, bp])

    def mod_e(x, name):
        b1 = _conv(x, 320, 1, f"{name}_1x1")
        b3 = _conv(x, 384, 1, f"{name}_3x3_1")
        b3 = L.Concatenate(axis=-1, name=f"{name}_3x3_concat")(
            [_conv_hw(b3, 384, 1, 3, f"{name}_3x3_2a"), _conv_hw(b3, 384, 3, 1, f"{name}_3x3_2b")])
        bd = _conv(_conv(x, 448, 1, f"{name}_3x3dbl_1"), 384, 3, f"{name}_3x3dbl_2")
        bd = L.Concatenate(axis=-1, name=f"{name}_3x3dbl_concat")(
            [_conv_hw(bd, 384, 1, 3, f"{name}_3x3dbl_3a"), _conv_hw(bd, 384, 3, 1, f"{name}_3x3dbl_3b")])
        bp = _conv(_avgpool3_same(x, f"{name}_pool"), 192, 1, f"{name}_pool_proj")
        return L.Concatenate(axis=-1, name=f"{name}_concat")([b1, b3, bd, bp])

    x = _conv(inp, 32, 3, "conv1a_3x3", stride=2, pad=0)
    x = _conv(x, 32, 3, "conv2a_3x3", pad=0)
    x = _conv(x, 64, 3, "conv2b_3x3")
    x = L.MaxPooling2D(3, 2, padding="valid", name="pool1")(x)
    x = _conv(x, 80, 1, "conv3b_1x1")
    x = _conv(x, 192, 3, "conv4a_3x3", pad=0)
    x = L.MaxPooling2D(3, 2, padding="valid", name="pool2")(x)
    x = mod_a(x, 32, "mixed_5b")
    x = mod_a(x, 64, "mixed_5c")
    x = mod_a(x, 64, "mixed_5d")
    x = mod_b(x, "mixed_6a")
    for name, c7 in (("mixed_6b", 128), ("mixed_6c", 160), ("mixed_6d", 160), ("mixed_6e", 192)):
        x = mod_c(x, c7, name)
    x = mod_d(x, "mixed_7a")
    x = mod_e(x, "mixed_7b")
    x = mod_e(x, "mixed_7c")
    return _model(inp, _head_gap_softmax(x, dense=True), "inception_v3")


_TV = "torchvision model docs (ImageNet-1k val, single 224 centre crop)"

NETWORKS: dict[str, NetworkSpec] = {
    spec.name: spec
    for spec in (
        NetworkSpec(
            "squeezenet1_1", "SqueezeNet v1.1", _squeezenet1_1, 227, 67, 58.178, 80.624,
            _TV + ", SqueezeNet1_1_Weights.IMAGENET1K_V1",
            "the study's 227x227 input (DeepScale Caffe release)",
            "Fire modules (squeeze 1x1, expand 1x1 + 3x3), conv classifier, global average pool",
            accuracy_ref="torchvision",
        ),
        NetworkSpec(
            "squeezenet1_1_224", "SqueezeNet v1.1 (224)", _squeezenet1_1, 224, 67, 58.178, 80.624,
            _TV + ", SqueezeNet1_1_Weights.IMAGENET1K_V1",
            "224x224 variant (torchvision input size)",
            "SqueezeNet v1.1 at 224x224",
            accuracy_ref="torchvision",
        ),
        NetworkSpec(
            "googlenet", "GoogLeNet (Inception v1)", _googlenet, 224, 64, 69.778, 89.530,
            _TV + ", GoogLeNet_Weights.IMAGENET1K_V1",
            "torchvision's GoogLeNet uses batch norm and a 3x3 in the '5x5' branch; this graph follows the "
            "paper (5x5, no LRN, no aux heads)",
            "9 Inception modules, global average pool, 1 FC",
            accuracy_ref="torchvision",
        ),
        NetworkSpec(
            "resnet50", "ResNet-50", _resnet50, 224, 32, 75.3, 92.2,
            "He et al. 2016, original Caffe release (KaimingHe/deep-residual-networks), 224 centre crop",
            "v1 graph (stride in the 1x1 conv, ~3.9 GMACs as in the study's Table I); torchvision's "
            "ResNet50_Weights.IMAGENET1K_V1 (v1.5, stride in the 3x3 conv, 4.1 GMACs) reports 76.13/92.86",
            "bottleneck residual blocks [3, 4, 6, 3], global average pool, 1 FC",
            accuracy_ref="He et al. 2016 (Caffe)",
        ),
        NetworkSpec(
            "mobilenet_v1", "MobileNet v1 (1.0, 224)", _mobilenet_v1, 224, 32, 70.9, 89.9,
            "TensorFlow-Slim model list, MobileNet_v1_1.0_224 checkpoint",
            "Howard et al. 2017 (arXiv:1704.04861) report top-1 70.6 and no top-5",
            "13 depthwise-separable blocks, ReLU6, global average pool, 1 FC",
            accuracy_ref="TF-Slim",
        ),
        NetworkSpec(
            "mobilenet_v2", "MobileNet v2 (1.0, 224)", _mobilenet_v2, 224, 32, 71.878, 90.286,
            _TV + ", MobileNet_V2_Weights.IMAGENET1K_V1",
            "Sandler et al. 2018 report 72.0 top-1",
            "17 inverted-residual blocks with linear bottlenecks, ReLU6, global average pool, 1 FC",
            accuracy_ref="torchvision",
        ),
        NetworkSpec(
            "nin", "Network-in-Network (ImageNet)", _nin, 224, 99, 59.36, math.nan,
            "Caffe Model Zoo NIN-ImageNet (Lin et al. 2014 model, released by M. Lin), centre crop",
            "top-5 not reported by the source",
            "4 mlpconv blocks (conv + two 1x1 'cccp'), conv classifier, global average pool, no FC",
            accuracy_ref="Caffe Model Zoo",
        ),
        NetworkSpec(
            "squeezenet1_0", "SqueezeNet v1.0", _squeezenet1_0, 224, 99, 58.092, 80.420,
            _TV + ", SqueezeNet1_0_Weights.IMAGENET1K_V1",
            "",
            "Fire modules, 7x7/96 first conv, pooling after fire4 and fire8; ~2.2x the MACs of v1.1",
            accuracy_ref="torchvision",
        ),
        NetworkSpec(
            "resnet18", "ResNet-18", _resnet18, 224, 32, 69.758, 89.078,
            _TV + ", ResNet18_Weights.IMAGENET1K_V1",
            "",
            "basic residual blocks [2, 2, 2, 2], global average pool, 1 FC",
            accuracy_ref="torchvision",
        ),
        NetworkSpec(
            "alexnet", "AlexNet", _alexnet, 224, 224, 56.522, 79.066,
            _TV + ", AlexNet_Weights.IMAGENET1K_V1",
            "torchvision's one-tower variant (no LRN, 64 first-layer filters); fixed 224x224 input",
            "5 conv, 3 max pools, 3 FC (58.6 M of its 61.1 M parameters in the FC layers)",
            accuracy_ref="torchvision",
        ),
        NetworkSpec(
            "densenet121", "DenseNet-121", _densenet121, 224, 32, 74.434, 91.972,
            _TV + ", DenseNet121_Weights.IMAGENET1K_V1",
            "BN folded as conv bias + ReLU after each conv (random weights: same operations and MACs)",
            "4 dense blocks [6, 12, 24, 16], growth 32, 1x1 + avg-pool transitions, 1 FC",
            accuracy_ref="torchvision",
        ),
        NetworkSpec(
            "vgg11", "VGG-11", _vgg11, 224, 224, 69.020, 88.628,
            _TV + ", VGG11_Weights.IMAGENET1K_V1",
            "configuration A without batch norm; fixed 224x224 input",
            "8 conv (3x3), 5 max pools, 3 FC (123.6 M of its 132.9 M parameters in the FC layers)",
            accuracy_ref="torchvision",
        ),
        NetworkSpec(
            "inception_v3", "Inception v3", _inception_v3, 299, 75, 77.294, 93.450,
            "torchvision model docs (ImageNet-1k val, single 299 centre crop), Inception_V3_Weights.IMAGENET1K_V1",
            "BN folded as conv bias; auxiliary classifier (training only) omitted",
            "factorised Inception modules (1x7 / 7x1, 1x3 / 3x1), 299x299 input, global average pool, 1 FC",
            accuracy_ref="torchvision",
        ),
    )
}


def same_architecture(name: str) -> set[str]:
    """The other zoo networks built by the same builder (one architecture at another input size, e.g.
    squeezenet1_1 / squeezenet1_1_224): a leave-one-network-out holds them out together."""
    spec = NETWORKS[name]
    return {n for n, s in NETWORKS.items() if n != name and s.builder is spec.builder}
