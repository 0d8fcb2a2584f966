"""U-Net family builders (paper Fig. 1) sharing one encoder and one level loop.

Node names follow the UNet++ notation ``x{i}_{j}``: level ``i`` (``i`` 2×2 max-pools
below the input), decoder step ``j``. The encoder is ``x{i}_0``; the plain U-Net
decoder node at level ``i`` is ``x{i}_{depth - i}``. Every model maps a
``(B, in, in, 1)`` float32 tile to ``(B, out, out, n_classes)`` float32 logits with
``out == unetseg.tiling.output_size(in, depth, padding)``.

With ``padding="valid"`` the difference between the sizes of any two feature maps of
one level is a constant of the architecture (both grow by the same amount with the
input), so every centre crop is a fixed :class:`keras.layers.Cropping2D`; a model for
any input size is built on a reference size and re-traced on ``(None, None, 1)``.
Only stock Keras layers are used, so a saved ``.keras`` file loads without
``custom_objects`` on every backend.
"""

from __future__ import annotations

import typing
from collections.abc import Callable

import keras
from keras import layers

from unetseg.config import Arch
from unetseg.errors import InputError
from unetseg.tiling import input_size_for, output_size

ARCHS: tuple[str, ...] = typing.get_args(Arch)
Block = Callable[[keras.KerasTensor, int, str, str], keras.KerasTensor]


def _conv(filters: int, size: int, name: str, padding: str = "valid",
          activation: str | None = "relu", strides: int = 1) -> layers.Conv2D:
    return layers.Conv2D(filters, size, strides=strides, padding=padding, activation=activation,
                         kernel_initializer="he_normal", name=name)


def conv_block(x: keras.KerasTensor, filters: int, padding: str, name: str) -> keras.KerasTensor:
    """Two 3×3 convolutions, each followed by a ReLU (paper §2)."""
    x = _conv(filters, 3, f"{name}_conv1", padding)(x)
    return _conv(filters, 3, f"{name}_conv2", padding)(x)


def residual_block(x: keras.KerasTensor, filters: int, padding: str,
                   name: str) -> keras.KerasTensor:
    """conv-BN-ReLU-conv-BN plus a 1×1-projected shortcut (cropped for valid padding), ReLU."""
    shortcut = _conv(filters, 1, f"{name}_proj", activation=None)(x)
    y = _conv(filters, 3, f"{name}_conv1", padding, activation=None)(x)
    y = layers.ReLU(name=f"{name}_relu1")(layers.BatchNormalization(name=f"{name}_bn1")(y))
    y = _conv(filters, 3, f"{name}_conv2", padding, activation=None)(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    y = layers.Add(name=f"{name}_add")([crop_to(shortcut, _size(y), f"{name}_proj"), y])
    return layers.ReLU(name=f"{name}_relu2")(y)


def _size(x: keras.KerasTensor) -> int:
    return int(x.shape[1])


def crop_to(x: keras.KerasTensor, size: int, name: str) -> keras.KerasTensor:
    """Centre-crop a square ``(B, s, s, C)`` map to ``(B, size, size, C)`` (paper §2)."""
    extra = _size(x) - size
    if extra == 0:
        return x
    return layers.Cropping2D((extra // 2, extra - extra // 2), name=f"{name}_crop")(x)


def up_sample(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    """2×2 up-convolution (stride-2 transposed convolution) with ReLU: doubles the size."""
    return layers.Conv2DTranspose(filters, 2, strides=2, activation="relu",
                                  kernel_initializer="he_normal", name=f"{name}_up")(x)


def attention_gate(skip: keras.KerasTensor, gate: keras.KerasTensor,
                   name: str) -> keras.KerasTensor:
    """Additive attention gate (Oktay et al. 2018, Fig. 2) on a skip connection.

    ``skip`` is ``(B, 2s, 2s, C)`` (already cropped to the decoder size), ``gate`` the
    ``(B, s, s, G)`` decoder map one level coarser. The coefficients
    ``sigmoid(psi(relu(theta(skip) + phi(gate))))`` are computed at the coarse size
    (``theta`` a 2×2 stride-2 convolution) and up-sampled by nearest neighbour, so
    tiles on a ``2**depth`` grid see the same gating as a whole image.
    """
    inter = max(int(skip.shape[-1]) // 2, 1)
    theta = _conv(inter, 2, f"{name}_theta", activation=None, strides=2)(skip)
    phi = _conv(inter, 1, f"{name}_phi", activation=None)(gate)
    act = layers.ReLU(name=f"{name}_gate_relu")(layers.Add(name=f"{name}_gate_add")([theta, phi]))
    alpha = layers.Conv2D(1, 1, activation="sigmoid", name=f"{name}_psi")(act)
    alpha = layers.UpSampling2D(2, name=f"{name}_alpha")(alpha)
    return layers.Multiply(name=f"{name}_gated")([skip, alpha])


def encoder(x: keras.KerasTensor, block: Block, depth: int, base_filters: int, padding: str,
            dropout: float) -> list[keras.KerasTensor]:
    """Contracting path: ``[x0_0, ..., x{depth}_0]``, channels ``base_filters * 2**i``.

    Drop-out follows the last two levels, the end of the contracting path (paper §3.1).
    """
    features: list[keras.KerasTensor] = []
    for i in range(depth + 1):
        if i:
            x = layers.MaxPooling2D(2, name=f"x{i}_0_pool")(features[-1])
        x = block(x, base_filters * 2**i, padding, f"x{i}_0")
        if dropout > 0 and i >= depth - 1:
            x = layers.Dropout(dropout, name=f"x{i}_0_dropout")(x)
        features.append(x)
    return features


def decoder(features: list[keras.KerasTensor], block: Block, base_filters: int, padding: str,
            gated: bool) -> keras.KerasTensor:
    """Expansive path of U-Net / residual U-Net / Attention U-Net: up-sample, crop, concat."""
    depth = len(features) - 1
    x = features[depth]
    for i in reversed(range(depth)):
        name = f"x{i}_{depth - i}"
        up = up_sample(x, base_filters * 2**i, name)
        skip = crop_to(features[i], _size(up), f"{name}_skip")
        if gated:
            skip = attention_gate(skip, x, name)
        x = block(layers.Concatenate(name=f"{name}_concat")([skip, up]), base_filters * 2**i,
                  padding, name)
    return x


def nested_decoder(features: list[keras.KerasTensor], block: Block, base_filters: int,
                   padding: str) -> keras.KerasTensor:
    """UNet++ dense skip pathways (Zhou et al. 2018, Eq. 1): returns ``x0_{depth}``.

    ``x{i}_{j} = block([x{i}_0, ..., x{i}_{j-1}, up(x{i+1}_{j-1})])``, every input
    centre-cropped to the smallest of them.
    """
    depth = len(features) - 1
    nodes = {(i, 0): f for i, f in enumerate(features)}
    for j in range(1, depth + 1):
        for i in range(depth + 1 - j):
            name = f"x{i}_{j}"
            inputs = [nodes[i, k] for k in range(j)]
            inputs.append(up_sample(nodes[i + 1, j - 1], base_filters * 2**i, name))
            size = min(_size(t) for t in inputs)
            inputs = [crop_to(t, size, f"{name}_in{k}") for k, t in enumerate(inputs)]
            nodes[i, j] = block(layers.Concatenate(name=f"{name}_concat")(inputs),
                                base_filters * 2**i, padding, name)
    return nodes[0, depth]


def build_model(arch: str, *, depth: int, base_filters: int, padding: str, dropout: float,
                input_size: int | None, n_classes: int = 2) -> keras.Model:
    """Build a U-Net-family segmentation network (paper Fig. 1 and its descendants).

    Parameters
    ----------
    arch : ``"unet"`` (paper), ``"resunet"`` (residual blocks with batch norm),
        ``"unetpp"`` (UNet++, Zhou et al. 2018) or ``"attention_unet"`` (Oktay et al. 2018).
    depth : number of 2×2 max-pool steps (the paper uses 4: 64, ..., 512, then 1024).
    base_filters : channels of the first level; they double with every level.
    padding : ``"valid"`` (paper; the output shrinks, see ``tiling.output_size``) or ``"same"``.
    dropout : drop-out rate at the end of the contracting path (0 disables it).
    input_size : square input tile size, or ``None`` for a model of any valid size.
    n_classes : output channels.

    Returns
    -------
    keras.Model
        ``(B, in, in, 1)`` float32 → ``(B, out, out, n_classes)`` float32 logits (no
        softmax). Layers follow the global dtype policy except the final 1×1
        convolution, which is float32.

    Raises
    ------
    InputError
        On an unknown arch, a bad depth/width/padding, or an input size the network
        cannot take.
    """
    if arch not in ARCHS:
        raise InputError(f"model.arch: unknown architecture {arch!r} "
                         f"(choose from {', '.join(ARCHS)})")
    if padding not in ("valid", "same"):
        raise InputError(f"model.padding: must be 'valid' or 'same', got {padding!r}")
    if depth < 1 or base_filters < 1 or n_classes < 1:
        raise InputError(f"model: depth={depth}, base_filters={base_filters} and "
                         f"n_classes={n_classes} must all be >= 1")
    size = input_size
    if size is None and padding == "valid":
        size = input_size_for(1, depth, padding)
    if size is not None:
        try:
            output_size(size, depth, padding)
        except ValueError as err:
            raise InputError(f"model.tile_size: {err}") from None
    block = residual_block if arch == "resunet" else conv_block
    inputs = keras.Input((size, size, 1), name="image")
    features = encoder(inputs, block, depth, base_filters, padding, dropout)
    if arch == "unetpp":
        x = nested_decoder(features, block, base_filters, padding)
    else:
        x = decoder(features, block, base_filters, padding, gated=arch == "attention_unet")
    logits = layers.Conv2D(n_classes, 1, kernel_initializer="he_normal", dtype="float32",
                           name="logits")(x)
    model = keras.Model(inputs, logits, name=f"{arch}_d{depth}_f{base_filters}_{padding}")
    if input_size is None and padding == "valid":
        model = any_size(model)
    return model


def any_size(model: keras.Model) -> keras.Model:
    """The same graph re-traced on a ``(None, None, 1)`` input (the crops are size-free), with
    ``model``'s weights: a network trained on one tile size, for every valid size."""
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_shape"] = (None, None, None, 1)
    resized = keras.Model.from_config(config)
    resized.set_weights(model.get_weights())
    return resized
