# heat_elementwise (golden_cases.py:109), rewritten by ckpt_transform.checkpoint_struct.
# The loop at golden_cases.py:113-116 is one call to checkpointed_for; this text is what runs.
# scheme:     Revolve(snapshots=4)
# state:      last, nxt
# parameters: n (local), lam (argument)
# by name:    none
#
# _ckpt_scope is never called: it gives the functions inside it their free names. They are built
# from their compiled code with the globals, closure cells and defaults of heat_elementwise.


def _ckpt_scope(_ckpt, _ckpt_scheme, _ckpt_report):
    def heat_elementwise_step(_ckpt_state, t, n, lam):
        last, nxt = _ckpt_state
        # loop body, golden_cases.py:114-116
        # rewritten from golden_cases.py:114: last[:] = nxt
        last = _ckpt.setitem(last, _ckpt.index[:], nxt)
        for i in range(1, n - 1):
            # rewritten from golden_cases.py:116: nxt[i] = last[i] + lam * (last[i - 1] - 2 *
            #     last[i] + last[i + 1])
            nxt = _ckpt.setitem(nxt, i, last[i] + lam * (last[i - 1] - 2 * last[i] + last[i + 1]))
        return last, nxt

    def heat_elementwise(T0, lam, tsteps):
        # before the loop, golden_cases.py:110-112
        n = len(T0)
        nxt = np.array(T0)
        last = np.array(T0)
        # the loop, golden_cases.py:113-116: for t in range(tsteps):
        last, nxt = _ckpt.checkpointed_for(
            heat_elementwise_step,
            (last, nxt),
            range(tsteps),
            _ckpt_scheme,
            params=(n, lam),
            report=_ckpt_report,
            refill=(0, 1),
        )
        # after the loop, golden_cases.py:117
        return np.sum(nxt)
