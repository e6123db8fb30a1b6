"""The fast engine: the plan (plan.py), one module per convolution algorithm (conv_im2col.py,
conv_winograd.py, conv_single_channel.py, conv_single_channel_rows.py), dense.py, threads/BLAS/buffers
(parallel.py), the tiered start (startup.py) and the engine that runs it all (engine.py). Start with plan.py."""
