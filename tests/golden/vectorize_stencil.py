# stencil_vectorized (golden_cases.py:156), rewritten by ckpt_transform.checkpoint_struct.
# The loop at golden_cases.py:158-163 is one call to checkpointed_for; this text is what runs.
# scheme:     Revolve(snapshots=3)
# state:      u
# parameters: n (local), m (local), c (argument)
# by name:    np
#
# _ckpt_scope is never called: it gives the functions inside it their free names. They are built
# from their compiled code with the globals, closure cells and defaults of stencil_vectorized.


def _ckpt_scope(_ckpt, _ckpt_scheme, _ckpt_report):
    def stencil_vectorized_step(_ckpt_state, t, n, m, c):
        (u,) = _ckpt_state
        # loop body, golden_cases.py:159-163
        old = np.array(u)
        # vectorised from golden_cases.py:160-163: for i in range(1, n - 1); for j in range(1, m -
        #     1)
        # legal: u written and read only at [i, j]; old not written; temporaries lap assigned before
        #     use: no iteration reads what another writes
        # the loop as written runs when a slice would leave its array, an operand is not as assumed
        #     or the range is empty (see _ckpt.fits)
        if _ckpt.fits(((1, n - 1), (1, m - 1)), old, ((0, -1, 1, 0), (1, 0, -1, 1)), u, ((0, 0), (1, 0)), scalars=(c,)):
            lap = old[0:n - 2, 1:m - 1] + old[2:n, 1:m - 1] + old[1:n - 1, 0:m - 2] + old[1:n - 1, 2:m] - 4 * old[1:n - 1, 1:m - 1]
            u = _ckpt.setitem(u, _ckpt.index[1:n - 1, 1:m - 1], old[1:n - 1, 1:m - 1] + c * lap)
        else:
            for i in range(1, n - 1):
                for j in range(1, m - 1):
                    lap = old[i - 1, j] + old[i + 1, j] + old[i, j - 1] + old[i, j + 1] - 4 * old[i, j]
                    # rewritten from golden_cases.py:163: u[i, j] = old[i, j] + c * lap
                    u = _ckpt.setitem(u, (i, j), old[i, j] + c * lap)
        return (u,)

    def stencil_vectorized(u, c, steps):
        # before the loop, golden_cases.py:157
        n, m = u.shape
        # the loop, golden_cases.py:158-163: for t in range(steps):
        (u,) = _ckpt.checkpointed_for(
            stencil_vectorized_step,
            (u,),
            range(steps),
            _ckpt_scheme,
            params=(n, m, c),
            report=_ckpt_report,
            refill=(0,),
        )
        # after the loop, golden_cases.py:164
        return np.sum(u)
