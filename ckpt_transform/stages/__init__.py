"""XAD-style checkpoint stages: a piece of a computation whose adjoint is computed on its own.

A *stage* is a function cut out of a longer computation. Under reverse-mode differentiation it is
one node of the outer autograd graph: on the way forward it runs passively (nothing is taped
inside it) and keeps only its inputs; on the way back its adjoint is computed by the method the
user chose, and its inputs are freed. This is the checkpoint callback of XAD's guide to
checkpointing, and the stage-wise checkpointing of Griewank & Walther (2008, ch. 12), brought to
autograd as one primitive.

Adjoint methods (``adjoint=``):

``"recompute"``
    Restore the inputs, record this stage alone with autograd (a nested recording), pull the
    cotangent back through it, and drop that recording before the previous stage's adjoint runs.
    Exact to rounding; memory: one stage's tape.
``"forward"``
    Forward mode (autograd's ``make_jvp``) column by column: one Jacobian-vector product per scalar
    input, each column contracted with the cotangent as it is computed. Exact to rounding; cost
    grows with the number of inputs; memory: one forward pass.
``"fd"``
    Central finite differences, two passive evaluations per scalar input. Accuracy about
    ``eps**(2/3)`` relative (about 1e-10 in float64) for smooth functions.
a function ``vjp(g, ans, *args)``
    The user's derivative (analytic, or from another library): returns one cotangent per
    positional argument, as a tuple, ``None`` for an argument that gets no gradient.

Nesting works in every direction: a stage may call stages and checkpointed loops, and a
checkpointed loop's step may call stages, because each of these is an autograd primitive that
behaves like a plain function when its arguments are not being traced.

Derivatives of every order: when a stage's adjoint is itself differentiated (``hessian``,
``grad(grad(f))``, ``make_jvp(grad(f))``), "recompute" and "forward" differentiate through the
body and a user ``vjp`` is differentiated through (it must use autograd.numpy); "fd" refuses
with an error naming the method. Inputs that are values of an outer recording stay in memory
with it, whatever the storage.

The package: `decorator` (`checkpoint_stage`), `spec` (what a stage is), `primitive` (the
stage as an autograd primitive, and which rule runs at which order), `methods` (the adjoint
methods), `arguments` (traced values inside containers, for nesting), `keeper` (where the inputs
wait).

References
----------
A. Griewank and A. Walther, *Evaluating Derivatives*, 2nd ed., SIAM, 2008, chapters 8 and 12.
https://doi.org/10.1137/1.9780898717761
XAD, "Checkpointing" (user manual), https://auto-differentiation.github.io/tutorials/checkpointing/
J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Springer, 2006, section 8.1.
https://doi.org/10.1007/978-0-387-40065-5
"""

from ckpt_transform.stages.decorator import checkpoint_stage

__all__ = ["checkpoint_stage"]
