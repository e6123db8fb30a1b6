"""EarlyStopping, ModelCheckpoint and CSVLogger on scripted loss curves, side by side with Keras's own callbacks
driven by the same curves (a stand-in model that only has weights), and through a real fit."""
import numpy as np
import pytest
from keras_reference import keras

import minicnn
from minicnn.callbacks import CSVLogger, EarlyStopping, ModelCheckpoint
from minicnn.layers import Dense, Flatten

CURVES = {
    "falls": [1.0, 0.8, 0.6, 0.5, 0.45, 0.4],
    "plateau": [1.0, 0.8, 0.79, 0.795, 0.81, 0.7, 0.69, 0.7, 0.71, 0.72],
    "noisy": [0.9, 1.0, 0.85, 0.86, 0.84, 0.9, 0.91, 0.92, 0.8, 0.95],
    "rises": [0.5, 0.6, 0.7, 0.8, 0.9],
}


class WeightsOnly:
    """What both callbacks see of a model: weights that change every epoch (the epoch number), stop_training."""

    def __init__(self):
        self.weights = [np.zeros(2)]
        self.stop_training = False

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]


def run_minicnn(callback, curve, monitor):
    model = WeightsOnly()
    callback.on_train_begin(model)
    for epoch, value in enumerate(curve):
        model.weights = [np.full(2, float(epoch))]
        if callback.on_epoch_end(model, epoch, {monitor: value, "loss": value}):
            break
    callback.on_train_end(model, {})
    return epoch, model.weights[0][0]


def run_keras(callback, curve, monitor):
    model = WeightsOnly()
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate(curve):
        model.weights = [np.full(2, float(epoch))]
        callback.on_epoch_end(epoch, {monitor: value, "loss": value})
        if model.stop_training:
            break
    callback.on_train_end()
    return epoch, model.weights[0][0]


SETTINGS = [dict(patience=0), dict(patience=2), dict(patience=2, min_delta=0.02), dict(patience=1, baseline=0.75),
            dict(patience=2, restore_best_weights=True), dict(patience=3, restore_best_weights=True, min_delta=0.01),
            dict(patience=1, start_from_epoch=3), dict(patience=2, mode="max"),
            dict(patience=2, monitor="val_accuracy", restore_best_weights=True)]


@pytest.mark.parametrize("curve", sorted(CURVES))
@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_early_stopping_stops_and_restores_where_keras_does(curve, settings):
    """The epoch training stops after, and the weights left (the best epoch's with restore_best_weights)."""
    monitor = settings.get("monitor", "val_loss")
    ours = run_minicnn(EarlyStopping(**settings), CURVES[curve], monitor)
    theirs = run_keras(keras.callbacks.EarlyStopping(**{**settings, **({"mode": "max"} if "accuracy" in monitor
                                                                         else {})}), CURVES[curve], monitor)
    assert ours == theirs


def test_early_stopping_in_fit_ends_training_and_restores_the_best_weights():
    """A real fit with a scripted val_loss (a callback before it writes the curve into the logs)."""
    curve = iter([0.5, 0.4, 0.45, 0.46, 0.47, 0.3])

    class Script:
        def on_epoch_end(self, model, epoch, logs):
            logs["val_loss"] = next(curve)
            self.weights = getattr(self, "weights", []) + [model.get_weights()]

    script, stop = Script(), EarlyStopping(patience=2, restore_best_weights=True)
    model = minicnn.Sequential([Flatten(), Dense(3)], input_shape=(4,))
    x, y = np.random.default_rng(0).random((32, 4)), np.arange(32) % 3
    history = model.fit(x, y, epochs=6, batch_size=8, verbose=0, callbacks=[script, stop])
    assert history.epoch == [0, 1, 2, 3] and stop.stopped_epoch == 3 and stop.best_epoch == 1
    for ours, best in zip(model.get_weights(), script.weights[1]):
        np.testing.assert_array_equal(ours, best)


def tiny_model():
    model = minicnn.Sequential([Flatten(), Dense(3)], input_shape=(4,))
    model.compile(optimizer=minicnn.optimizers.Adam(1e-2))
    return model


def test_model_checkpoint_fills_in_the_file_name_and_saves_only_the_best(tmp_path):
    curve = iter([0.5, 0.4, 0.45, 0.3])

    class Script:
        def on_epoch_end(self, model, epoch, logs):
            logs["val_loss"] = next(curve)

    x, y = np.random.default_rng(0).random((32, 4)), np.arange(32) % 3
    every = ModelCheckpoint(str(tmp_path / "all-{epoch:02d}-{val_loss:.2f}.npz"))
    best = ModelCheckpoint(str(tmp_path / "best-{epoch}.npz"), save_best_only=True)
    tiny_model().fit(x, y, epochs=4, batch_size=8, verbose=0, callbacks=[Script(), every, best])
    assert sorted(p.name for p in tmp_path.glob("all-*")) == ["all-01-0.50.npz", "all-02-0.40.npz",
                                                               "all-03-0.45.npz", "all-04-0.30.npz"]
    assert sorted(p.name for p in tmp_path.glob("best-*")) == ["best-1.npz", "best-2.npz", "best-4.npz"]
    resumed = minicnn.load_model(tmp_path / "all-02-0.40.npz")
    assert resumed.resume_point["epoch"] == 2 and resumed.resume_point["step"] == 0
    assert resumed.optimizer.iterations == 8 and resumed.resume_point["history"]["val_loss"] == [0.5, 0.4]


def test_model_checkpoint_every_n_steps(tmp_path):
    x, y = np.random.default_rng(0).random((40, 4)), np.arange(40) % 3
    saver = ModelCheckpoint(str(tmp_path / "step-{epoch}-{batch}.npz"), save_freq=3)
    tiny_model().fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[saver])  # 5 steps per epoch
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["step-1-3.npz", "step-2-1.npz", "step-2-4.npz"]
    point = minicnn.load_model(tmp_path / "step-2-1.npz").resume_point
    assert (point["epoch"], point["step"]) == (1, 1)
    with pytest.raises(KeyError, match="not among the metrics"):
        tiny_model().fit(x, y, epochs=1, batch_size=8, verbose=0,
                         callbacks=[ModelCheckpoint(str(tmp_path / "{val_loss}.npz"))])


def run_csv_logger(make, path, epochs, keras_style):
    logger = make(str(path))
    model = WeightsOnly()
    if keras_style:
        logger.set_model(model)
        logger.on_train_begin()
    else:
        logger.on_train_begin(model)
    for epoch, loss in enumerate(CURVES["falls"][:epochs]):
        logs = {"loss": loss, "accuracy": 1 - loss / 2, "learning_rate": 0.001}
        logger.on_epoch_end(epoch, logs) if keras_style else logger.on_epoch_end(model, epoch, logs)
    if keras_style:
        logger.on_train_end()
    return path.read_bytes()


@pytest.mark.parametrize("separator", [",", ";"])
def test_csv_logger_writes_what_keras_writes(tmp_path, separator):
    ours = run_csv_logger(lambda p: CSVLogger(p, separator=separator), tmp_path / "ours.csv", 4, False)
    theirs = run_csv_logger(lambda p: keras.callbacks.CSVLogger(p, separator=separator), tmp_path / "k.csv", 4, True)
    assert ours == theirs and ours.startswith(f"epoch{separator}accuracy".encode())
    ours = run_csv_logger(lambda p: CSVLogger(p, separator=separator, append=True), tmp_path / "ours.csv", 2, False)
    theirs = run_csv_logger(lambda p: keras.callbacks.CSVLogger(p, separator=separator, append=True),
                            tmp_path / "k.csv", 2, True)
    assert ours == theirs and ours.count(b"epoch") == 1 and ours.count(b"\r\n") == 7
