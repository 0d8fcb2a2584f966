import keras
import numpy as np
import pytest

from unetseg.errors import InputError
from unetseg.tiling import output_size
from unetseg.train.losses import WeightedCrossEntropy, pixel_accuracy
from unetseg.train.models import ARCHS, any_size, build_model


def _build(arch, padding="valid", size=60, depth=2, base=4, dropout=0.0):
    return build_model(arch, depth=depth, base_filters=base, padding=padding, dropout=dropout,
                       input_size=size)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(("padding", "size"), [("valid", 60), ("valid", 76), ("same", 32)])
def test_output_geometry_agrees_with_tiling(arch, padding, size):
    model = _build(arch, padding, size)
    out = output_size(size, 2, padding)
    assert model.input_shape == (None, size, size, 1)
    assert model.output_shape == (None, out, out, 2)


def test_paper_geometry_572_to_388():
    model = build_model("unet", depth=4, base_filters=2, padding="valid", dropout=0.5,
                        input_size=572)
    assert model.output_shape == (None, 388, 388, 2)
    widths = [model.get_layer(f"x{i}_0_conv2").filters for i in range(5)]
    assert widths == [2, 4, 8, 16, 32]
    assert model.get_layer("x0_4_skip_crop").cropping == ((88, 88), (88, 88))


@pytest.mark.parametrize("arch", ARCHS)
def test_any_size_model_matches_fixed_size_model(arch):
    free = build_model(arch, depth=2, base_filters=3, padding="valid", dropout=0.0,
                       input_size=None)
    assert free.input_shape == (None, None, None, 1)
    x = np.random.default_rng(0).random((1, 76, 76, 1)).astype(np.float32)
    fixed = _build(arch, size=76, base=3)
    fixed.set_weights(free.get_weights())
    a = free.predict_on_batch(x)
    assert a.shape == (1, output_size(76, 2, "valid"), output_size(76, 2, "valid"), 2)
    np.testing.assert_allclose(a, fixed.predict_on_batch(x), atol=1e-5)
    again = any_size(fixed)
    assert again.input_shape == (None, None, None, 1)
    np.testing.assert_allclose(again.predict_on_batch(x), a, atol=1e-5)


def test_unet_has_no_extras_and_dropout_ends_the_contracting_path():
    model = _build("unet", dropout=0.5)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert kinds == {"InputLayer", "Conv2D", "MaxPooling2D", "Dropout", "Cropping2D",
                     "Conv2DTranspose", "Concatenate"}
    assert [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [
        "x1_0_dropout", "x2_0_dropout"]
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in _build("unet").layers)
    assert model.get_layer("logits").activation is keras.activations.linear


@pytest.mark.parametrize("arch", ARCHS)
def test_parameter_count_grows_with_base_filters(arch):
    counts = [_build(arch, "same", 16, base=b).count_params() for b in (2, 4, 8)]
    assert counts[0] < counts[1] < counts[2]


def test_archs_differ_in_structure():
    names = {arch: {layer.name for layer in _build(arch).layers} for arch in ARCHS}
    assert "x0_1_conv1" in names["unetpp"] and "x0_1_conv1" not in names["unet"]
    assert "x0_2_gated" in names["attention_unet"]
    assert "x0_0_proj" in names["resunet"] and "x0_0_bn1" in names["resunet"]


@pytest.mark.parametrize("bad", [
    {"arch": "segnet"},
    {"padding": "reflect"},
    {"depth": 0},
    {"input_size": 61},
    {"input_size": 30, "padding": "same"},
])
def test_bad_settings_raise_input_error(bad):
    kwargs = {"arch": "unet", "depth": 2, "base_filters": 4, "padding": "valid", "dropout": 0.0,
              "input_size": 60, **bad}
    with pytest.raises(InputError, match="model"):
        build_model(kwargs.pop("arch"), **kwargs)


@pytest.mark.parametrize("arch", ARCHS)
def test_adam_steps_lower_the_weighted_loss(arch):
    keras.utils.set_random_seed(0)
    model = _build(arch, "same", 16, base=4)
    rng = np.random.default_rng(0)
    x = rng.random((2, 16, 16, 1)).astype(np.float32)
    classes = (x[..., 0] > 0.5).astype(np.float32)
    y = np.stack([classes, rng.uniform(0.5, 3.0, classes.shape).astype(np.float32)], axis=-1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=WeightedCrossEntropy(),
                  metrics=[pixel_accuracy], jit_compile=False)
    history = [model.train_on_batch(x, y, return_dict=True) for _ in range(20)]
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    assert history[-1]["pixel_accuracy"] > history[0]["pixel_accuracy"]


@pytest.mark.parametrize("arch", ARCHS)
def test_saved_model_loads_without_custom_objects(arch, tmp_path):
    model = _build(arch, "valid", 60, dropout=0.5)
    assert all(type(layer).__module__.startswith("keras.") for layer in model.layers)
    x = np.random.default_rng(1).random((2, 60, 60, 1)).astype(np.float32)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict_on_batch(x), model.predict_on_batch(x))


def test_compiled_model_round_trip_keeps_loss_and_metric(tmp_path):
    model = _build("unet", "same", 16)
    model.compile(optimizer="adam", loss=WeightedCrossEntropy(), metrics=[pixel_accuracy])
    model.optimizer.build(model.trainable_variables)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=True)
    assert isinstance(loaded.loss, WeightedCrossEntropy)


def test_mixed_precision_gives_float32_logits():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = _build("attention_unet", "valid", 60)
        x = np.random.default_rng(2).random((1, 60, 60, 1)).astype(np.float32)
        logits = model.predict_on_batch(x)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("x0_0_conv1").compute_dtype == "bfloat16"
    assert model.output.dtype == "float32"
    assert logits.dtype == np.float32 and np.isfinite(logits).all()
