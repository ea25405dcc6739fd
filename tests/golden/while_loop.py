# decay (golden_cases.py:65), rewritten by ckpt_transform.checkpoint_struct.
# The loop at golden_cases.py:68-72 is one call to checkpointed_while; this text is what runs.
# scheme:     StoreAll()
# state:      y, t
# parameters: t_end (argument), dt (argument), rate (argument)
# by name:    rhs
#
# _ckpt_scope is never called: it gives the functions inside it their free names. They are built
# from their compiled code with the globals, closure cells and defaults of decay.


def _ckpt_scope(_ckpt, _ckpt_scheme, _ckpt_report):
    def decay_step(_ckpt_state, _ckpt_i, t_end, dt, rate):
        y, t = _ckpt_state
        # loop body, golden_cases.py:69-72
        k1 = rhs(y, rate)
        k2 = rhs(y + 0.5 * dt * k1, rate)
        y = y + dt * k2
        t = t + dt
        return y, t

    def decay_cond(_ckpt_state, t_end, dt, rate):
        y, t = _ckpt_state
        # loop condition, golden_cases.py:68
        return t < t_end - 0.5 * dt

    def decay(y0, rate, t_end, dt):
        # before the loop, golden_cases.py:66-67
        t = 0.0
        y = y0
        # the loop, golden_cases.py:68-72: while t < t_end - 0.5 * dt:
        y, t = _ckpt.checkpointed_while(
            decay_cond,
            decay_step,
            (y, t),
            _ckpt_scheme,
            params=(t_end, dt, rate),
            report=_ckpt_report,
        )
        # after the loop, golden_cases.py:73
        return y
