"""The hot loops of minicnn. Each module holds a readable NumPy twin and a Numba kernel of the same function,
plus a small dispatcher (the name without suffix) that runs whichever ``minicnn.backend`` selects.

==================  =======================================================
module              what it computes
==================  =======================================================
``im2col``          image patches -> matrix rows (and back, ``col2im``)
``pooling``         max-pool forward (with argmax) and backward
``relu``            ReLU forward and backward
``softmax_xent``    fused softmax + cross-entropy loss and its gradient
``optim``           the Adam and SGD updates over one flat parameter buffer
==================  =======================================================

Numba kernels are compiled with ``cache=True`` (compiled code is kept on disk beside the source, so only the
first run ever pays for compilation) and ``nogil=True`` (two Python threads can run them at once).
"""
