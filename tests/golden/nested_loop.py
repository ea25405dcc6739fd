# picard (golden_cases.py:98), rewritten by ckpt_transform.checkpoint_struct.
# The loop at golden_cases.py:99-103 is one call to checkpointed_for; this text is what runs.
# scheme:     Revolve(snapshots=2)
# state:      u
# parameters: sweeps (argument), dt (argument), lam (argument)
# by name:    np
#
# _ckpt_scope is never called: it gives the functions inside it their free names. They are built
# from their compiled code with the globals, closure cells and defaults of picard.


def _ckpt_scope(_ckpt, _ckpt_scheme, _ckpt_report):
    def picard_step(_ckpt_state, n, sweeps, dt, lam):
        (u,) = _ckpt_state
        # loop body, golden_cases.py:100-103
        w = u
        for k in range(sweeps):
            w = u + dt * lam * np.sin(w)
        u = w
        return (u,)

    def picard(u, lam, dt, steps, sweeps):
        # the loop, golden_cases.py:99-103: for n in range(steps):
        (u,) = _ckpt.checkpointed_for(
            picard_step,
            (u,),
            range(steps),
            _ckpt_scheme,
            params=(sweeps, dt, lam),
            report=_ckpt_report,
        )
        # after the loop, golden_cases.py:104
        return u
