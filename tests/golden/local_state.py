# oscillator (golden_cases.py:50), rewritten by ckpt_transform.checkpoint_struct.
# The loop at golden_cases.py:53-55 is one call to checkpointed_for; this text is what runs.
# scheme:     Revolve(snapshots=3)
# state:      v, x, t
# parameters: dt (argument), k (argument)
# by name:    none
#
# _ckpt_scope is never called: it gives the functions inside it their free names. They are built
# from their compiled code with the globals, closure cells and defaults of oscillator.


def _ckpt_scope(_ckpt, _ckpt_scheme, _ckpt_report):
    def oscillator_step(_ckpt_state, n, dt, k):
        v, x, t = _ckpt_state
        # loop body, golden_cases.py:54-55
        # rewritten from golden_cases.py:54: v -= dt * k * x
        v = v - dt * k * x
        x, t = x + dt * v, t + dt
        return v, x, t

    def oscillator(x, v, k, dt, steps):
        """Symplectic Euler for x'' = -k x."""
        # before the loop, golden_cases.py:52
        t = 0.0
        # the loop, golden_cases.py:53-55: for n in range(steps):
        v, x, t = _ckpt.checkpointed_for(
            oscillator_step,
            (v, x, t),
            range(steps),
            _ckpt_scheme,
            params=(dt, k),
            report=_ckpt_report,
        )
        # after the loop, golden_cases.py:56
        return x, v, t
