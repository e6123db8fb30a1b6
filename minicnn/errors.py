"""The exceptions minicnn raises. Each message says what is wrong and what to do about it."""


class MiniCNNError(Exception):
    """Base class of every error minicnn raises on purpose."""


class ShapeError(MiniCNNError, ValueError):
    """A layer was given an input shape it cannot take (raised when the model is built or called)."""


class LabelError(MiniCNNError, ValueError):
    """Labels that do not fit the model: out of range, wrong shape or wrong count."""


class NonFiniteLossError(MiniCNNError, FloatingPointError):
    """The training loss became NaN or infinite; training stopped before the bad update was applied."""


class NonFiniteGradientError(NonFiniteLossError):
    """A gradient became NaN or infinite (the message names the layers); training stopped before the update."""


class InputError(MiniCNNError, ValueError):
    """Inputs a model cannot take: NaN or infinite values, or a non-numeric dtype."""


class ModelFileError(MiniCNNError, ValueError):
    """A saved model file is missing, corrupted, or does not match the model it is loaded into."""

