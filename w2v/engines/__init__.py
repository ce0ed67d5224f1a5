"""Training engines. Each module provides

- `minibatch_loss_and_gradient(center_vectors, outside_vectors, batch, loss)` -> (batch-mean
  loss, dense grad_center_vectors (V, d), dense grad_outside_vectors (V, d)), and
- `Stepper(pool, table, center_vectors, outside_vectors, loss, window, K, batch_size)` (the
  batched one also takes `threads`) whose `run(rngs, lr, iterations)` (lr a number or one per
  iteration) trains in place and returns the batch losses.

`loop` is the readable per-window reference built on w2v.losses; `batched` is the numba kernel
that trains. Both draw their minibatches with w2v.sampling.fill_minibatch, so one seed gives
both the same windows and negatives.
"""
from w2v.engines import batched, loop

ENGINES = {"loop": loop, "batched": batched}
