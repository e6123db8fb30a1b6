"""The augmentation layers (RandomRotation, RandomTranslation, RandomZoom): against Keras's own layers with fixed
draws, identity at inference, reproducible from a seed, the same on every engine, the transpose right.

Tolerance against Keras (bilinear): 1e-6 on images in [0, 1]. minicnn computes the source coordinates in float64,
Keras (JAX) in float32; bilinear interpolation is continuous, so that moves a pixel by ~1e-7 (measured: at most
4.2e-7). Nearest-pixel interpolation is compared exactly on transforms whose source points are nowhere near a
half-pixel tie (rotation, translation); a zoom can land exactly on .5 in float64 where float32 lands beside it,
and there the two pick different pixels (as any two implementations might).
"""
import numpy as np
import pytest
from keras_reference import keras

import minicnn
from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D, RandomRotation, RandomTranslation, RandomZoom
from minicnn.layers.image_transform import affine_warp, affine_warp_backward

pytestmark = pytest.mark.parity

FILL_MODES = ["reflect", "wrap", "constant", "nearest"]
TOLERANCE = 1e-6


def fixed_pairs(fill_mode, interpolation):
    """(minicnn layer, Keras layer) with degenerate ranges: every image gets the same, known transform."""
    common = {"fill_mode": fill_mode, "interpolation": interpolation, "fill_value": 0.3}
    pairs = [(RandomRotation((0.07, 0.07), **common), keras.layers.RandomRotation((0.07, 0.07), **common)),
             (RandomRotation((-10 / 360, -10 / 360), **common),
              keras.layers.RandomRotation((-10 / 360, -10 / 360), **common)),
             (RandomTranslation((0.23, 0.23), (-0.31, -0.31), **common),
              keras.layers.RandomTranslation((0.23, 0.23), (-0.31, -0.31), **common))]
    if interpolation == "bilinear":
        pairs += [(RandomZoom((0.3, 0.3), (-0.2, -0.2), **common),
                   keras.layers.RandomZoom((0.3, 0.3), (-0.2, -0.2), **common)),
                  (RandomZoom((-0.4, -0.4), **common), keras.layers.RandomZoom((-0.4, -0.4), **common))]
    return pairs


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_each_layer_matches_keras_on_a_fixed_transform(fill_mode, interpolation):
    x = np.random.default_rng(0).random((3, 11, 9, 2)).astype(np.float32)
    for ours, theirs in fixed_pairs(fill_mode, interpolation):
        ours.build(x.shape[1:], np.float32, None)
        expected = np.asarray(theirs(x, training=True))
        actual, _ = ours.forward(x, training=True)
        assert actual.dtype == np.float32
        tolerance = TOLERANCE if interpolation == "bilinear" else 0
        np.testing.assert_allclose(actual, expected, atol=tolerance, rtol=0, err_msg=repr(ours))


def test_the_drawn_ranges_are_keras_s():
    """factor as a fraction of a full turn (±10 degrees for 10/360), translation as a fraction of the size,
    zoom 1 + factor (positive: zoom out), width drawing its own factor only when given."""
    def draws(layer, shape=(20, 30, 1)):
        layer.build(shape, np.float32, None)
        return layer.next_transforms(2000)

    t = draws(RandomRotation(10 / 360))
    degrees = np.rad2deg(np.arctan2(t[:, 3], t[:, 0]))
    assert -10 <= degrees.min() < -9.9 and 9.9 < degrees.max() <= 10
    t = draws(RandomTranslation(0.1, (0.2, 0.3)))
    assert -2 <= (-t[:, 5]).min() < -1.9 and 1.9 < (-t[:, 5]).max() <= 2  # rows: 0.1 * 20
    assert 6 <= (-t[:, 2]).min() < 6.1 and 8.9 < (-t[:, 2]).max() <= 9  # columns: (0.2 .. 0.3) * 30
    t = draws(RandomZoom(0.25))
    assert np.array_equal(t[:, 0], t[:, 4]) and 0.75 <= t[:, 4].min() < 0.76 and 1.24 < t[:, 4].max() <= 1.25
    t = draws(RandomZoom(0.25, (-0.1, 0.1)))
    assert not np.array_equal(t[:, 0], t[:, 4]) and 0.9 <= t[:, 0].min() and t[:, 0].max() <= 1.1


@pytest.mark.parametrize("make", [lambda: RandomRotation(0.1), lambda: RandomTranslation(0.2, 0.2),
                                  lambda: RandomZoom(0.2)])
def test_identity_at_inference_random_in_training_and_reproducible_from_the_seed(make):
    x = np.random.default_rng(1).random((4, 10, 10, 1)).astype(np.float32)
    first, second = make(), make()
    for layer in (first, second):
        layer.seed = 7
        layer.build(x.shape[1:], np.float32, None)
    y, cache = first.forward(x, training=False)
    assert y is x and cache is None and first.backward(x, None, [], True) is x
    a1, a2 = first.forward(x, True)[0], first.forward(x, True)[0]
    b1, b2 = second.forward(x, True)[0], second.forward(x, True)[0]
    assert np.array_equal(a1, b1) and np.array_equal(a2, b2)  # same seed, same calls: same images
    assert not np.array_equal(a1, a2) and not np.array_equal(a1, x)  # another call, another draw
    first.calls = 0  # what fit does before every step: the draw depends on (seed, step) only
    assert np.array_equal(first.forward(x, True)[0], a1)


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("nearest", [False, True])
def test_the_backward_warp_is_the_transpose_of_the_forward_one(fill_mode, nearest):
    """<warp(x), g> = <x, warp^T(g)> for every x, g: the backward pass is the exact gradient (fill_value 0, where
    the constant fill is not an input)."""
    rng = np.random.default_rng(2)
    x, g = rng.standard_normal((2, 2, 7, 6, 3))
    layer = RandomRotation(0.3, fill_mode=fill_mode, interpolation="nearest" if nearest else "bilinear", seed=1)
    layer.build(x.shape[1:], np.float64, None)
    transforms = layer.next_transforms(2)
    transforms[:, 2] += (1.7, -2.4)  # and a shift, so some reads fall outside
    code = layer.fill_mode_code
    forward = affine_warp(x, transforms, code, 0.0, nearest)
    assert np.isclose(np.sum(forward * g), np.sum(x * affine_warp_backward(g, transforms, code, nearest)),
                      rtol=1e-12)


def model_with_augmentation(engine, seed=0):
    return minicnn.Sequential([RandomRotation(0.05), RandomTranslation(0.1, 0.1), RandomZoom(0.1),
                               Conv2D(4, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(10, activation="softmax")],
                              input_shape=(12, 12, 1), seed=seed, engine=engine)


def test_every_engine_trains_the_same_with_augmentation():
    """The fast engine warps the whole batch with the Numba kernel before splitting it over threads; the reference
    engine runs the layers' NumPy functions: the same draws, the same weights to float rounding."""
    rng = np.random.default_rng(3)
    x, y = rng.random((96, 12, 12, 1)).astype(np.float32), rng.integers(0, 10, 96)
    weights = {}
    for engine in ("fast", "reference", "twins"):
        model = model_with_augmentation(engine)
        model.compile(optimizer=minicnn.optimizers.Adam(1e-2))
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        weights[engine] = model.get_weights()
        assert "warp" in model.plan(16, print_fn=None) or engine == "reference"
        np.testing.assert_array_equal(model.predict(x[:4]), model.clone().predict(x[:4]))  # inference: no draw
    for engine in ("reference", "twins"):
        for ours, theirs in zip(weights["fast"], weights[engine]):
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_a_saved_model_keeps_its_augmentation_settings(tmp_path):
    model = model_with_augmentation("fast")
    model.save(tmp_path / "m.npz")
    again = minicnn.load_model(tmp_path / "m.npz")
    assert [layer.get_config() for layer in again.layers] == [layer.get_config() for layer in model.layers]


def test_bad_arguments_are_refused_with_the_allowed_values():
    with pytest.raises(ValueError, match="fraction of a full turn"):
        RandomRotation(1.5)
    with pytest.raises(ValueError, match="fill_mode must be one of"):
        RandomTranslation(0.1, 0.1, fill_mode="mirror")
    with pytest.raises(ValueError, match="interpolation must be one of"):
        RandomZoom(0.1, interpolation="bicubic")
    with pytest.raises(ValueError, match="above -1"):
        RandomZoom(-1.0)


def test_to_keras_and_back_keeps_the_augmentation_layers():
    from minicnn.interop import from_keras, to_keras

    model = minicnn.report004()
    keras_model = to_keras(model)
    rotation = keras_model.layers[0]
    assert type(rotation) is keras.layers.RandomRotation and tuple(rotation.factor) == (-10 / 360, 10 / 360)
    x = np.random.default_rng(4).random((2, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(keras_model(x, training=False)), model.predict(x), atol=1e-5)
    again = from_keras(keras.Sequential([keras.Input((12, 12, 1)), keras.layers.RandomTranslation(0.1, 0.2, seed=4),
                                         keras.layers.RandomZoom(0.2, fill_mode="constant"), keras.layers.Flatten(),
                                         keras.layers.Dense(3)]))
    translation, zoom = again.layers[:2]
    assert translation.get_config()["width_factor"] == [-0.2, 0.2] and translation.seed == 4
    assert zoom.fill_mode == "constant" and zoom.height_factor == (-0.2, 0.2)
