"""The reports' toolkit: LeakyReLU, AveragePooling2D, Dropout, BatchNormalization and the regularizers.

Float64 gradient checks in training mode (BatchNormalization's batch statistics, Dropout with a fixed mask),
the fast engine against the reference engine on a model with every new layer, saving and loading (with the
moving statistics), the reports' models, and the error messages. Keras parity: tests/test_keras_parity.py.
"""
import numpy as np
import pytest

import minicnn
from minicnn.gradcheck import check_layer
from minicnn.layers import AveragePooling2D, Dense, Flatten, LeakyReLU

TOLERANCE = 1e-6


# ---------------------------------------------------------------------------------------------- LeakyReLU
def test_leaky_relu_slope_at_zero_is_one_as_keras_on_jax():
    layer = LeakyReLU(negative_slope=0.25)
    layer.build((4,), np.float64, None)
    y, cache = layer.forward(np.array([[-2.0, 0.0, 3.0, -0.0]]))
    np.testing.assert_array_equal(y, [[-0.5, 0.0, 3.0, 0.0]])
    np.testing.assert_array_equal(layer.backward(np.ones((1, 4)), cache, []), [[0.25, 1, 1, 1]])


def test_leaky_relu_gradient_at_exact_zeros():
    x = np.array([[0.0, 1.5, 0.0, -2.0, 0.0, 0.7]])
    report = check_layer(LeakyReLU(), (6,), x=x, verbose=False)
    assert report.passed, str(report)


def test_activation_leaky_relu_is_keras_activation_with_slope_0_2():
    model = minicnn.Sequential([Flatten(), Dense(4, activation="leaky_relu")], input_shape=(2, 2, 1))
    assert isinstance(model.layers[-1], LeakyReLU) and model.layers[-1].negative_slope == 0.2
    assert model.layers[-1].name == "leaky_relu"


@pytest.mark.parametrize("slope", [-0.1, float("nan"), "0.2", None])
def test_leaky_relu_rejects_a_bad_slope(slope):
    with pytest.raises(ValueError, match="negative_slope"):
        LeakyReLU(negative_slope=slope)


# ---------------------------------------------------------------------------------------------- AveragePooling2D
def test_average_pooling_same_averages_only_the_real_inputs_as_keras():
    """Keras 3 (JAX), run once: AveragePooling2D(2, padding="same") of 1..25 in a 5x5 image gives these."""
    x = np.arange(1, 26, dtype=np.float64).reshape(1, 5, 5, 1)
    layer = AveragePooling2D(2, padding="same")
    layer.build((5, 5, 1), np.float64, None)
    np.testing.assert_array_equal(layer(x)[0, :, :, 0], [[4, 6, 7.5], [14, 16, 17.5], [21.5, 23.5, 25]])


def test_average_pooling_valid_drops_the_last_row_and_column():
    x = np.arange(1, 26, dtype=np.float64).reshape(1, 5, 5, 1)
    layer = AveragePooling2D(2)
    layer.build((5, 5, 1), np.float64, None)
    np.testing.assert_array_equal(layer(x)[0, :, :, 0], [[4, 6], [14, 16]])
