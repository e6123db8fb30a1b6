"""The hot loops of minicnn's fast engine. Each module holds Numba kernels declared with their readable NumPy twins
(``@njit(..., twin=...)``, see ``jit.py``); an engine calls them by name through a ``KernelTable``.

==================  =======================================================
module              what it computes
==================  =======================================================
``im2col``          image patches -> matrix rows (and back), the zero padding built in, into a given buffer
``pooling``         max-pool forward (with argmax) and backward
``relu``            ReLU forward and backward
``softmax_xent``    fused softmax + cross-entropy loss and its gradient
``optim``           the Adam and SGD updates over one flat parameter buffer
``fused``           bias + ReLU + max-pool after a convolution (and bias + ReLU after Dense), in one pass,
                    forward and backward: what the fast engine's fused steps run (``minicnn/fast/``)
``winograd``        the tile transforms of Winograd's F(2x2, 3x3) convolution (fewer multiplications), and
                    the output transform fused with a 2x2 max-pool
``single_channel``  a 3x3 convolution of a one-channel image + bias + ReLU + 2x2 max-pool in one pass (a
                    grayscale first layer), and its kernel and bias gradients; the same for any K x K kernel
                    (LeNet-5's 5x5), computed along image rows
``batch_norm``      BatchNormalization: batch statistics in one float64 pass (summable over threads), the
                    affine map, the two backward passes
``dropout``         dropout with its mask drawn in the kernel from the layer's hash of (seed, call, element)
==================  =======================================================

Numba kernels are compiled with ``cache=True`` (compiled code is kept on disk beside the source, so only the
first run ever pays for compilation) and ``nogil=True`` (two Python threads can run them at once).

They are declared with ``minicnn.kernels.jit.njit``, a lazy ``numba.njit``: importing these modules does not
import Numba; the first call of a kernel does (see ``jit.py``, and ``minicnn/fast/startup.py`` for the tiered start).
A kernel may call another kernel of its own file (winograd's backward output kernels share ``_tile_dM_numba``).
"""
