"""Per-step differentiation, one module per AD framework; knows nothing of schemes or storage.

* `autograd` -- everything the package asks of autograd: one segment's VJP, differentiable
  dataclasses, the primitives the driver and stages are built on.

A backend is the only place that imports its framework (see docs/contributing.md).
"""
