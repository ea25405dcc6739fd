# clip_and_sweep (golden_cases.py:169), rewritten by ckpt_transform.checkpoint_struct.
# The loop at golden_cases.py:171-178 is one call to checkpointed_for; this text is what runs.
# scheme:     Revolve(snapshots=2)
# state:      x
# parameters: n (local), a (argument)
# by name:    np
#
# _ckpt_scope is never called: it gives the functions inside it their free names. They are built
# from their compiled code with the globals, closure cells and defaults of clip_and_sweep.


def _ckpt_scope(_ckpt, _ckpt_scheme, _ckpt_report):
    def clip_and_sweep_step(_ckpt_state, t, n, a):
        (x,) = _ckpt_state
        # loop body, golden_cases.py:172-178
        y = np.array(x)
        # vectorised from golden_cases.py:173-175: for i in range(n)
        # legal: y written and read only at [i]; x not written: no iteration reads what another
        #     writes
        # the loop as written runs when a slice would leave its array, an operand is not as assumed
        #     or the range is empty (see _ckpt.fits)
        if _ckpt.fits(((0, n),), x, ((0, 0),), y, ((0, 0),)):
            y = _ckpt.setitem(
                y,
                _ckpt.index[0:n],
                _ckpt.where(x[0:n] > 0.5, x[0:n] * x[0:n], y[0:n]),
            )
        else:
            for i in range(n):
                if x[i] > 0.5:
                    # rewritten from golden_cases.py:175: y[i] = x[i] * x[i]
                    y = _ckpt.setitem(y, i, x[i] * x[i])
        x = np.array(y)
        # not vectorised, golden_cases.py:177-178: for k in range(1, n): x is written at [k] and
        #     read at [k - 1]: iterations would depend on each other
        for k in range(1, n):
            # rewritten from golden_cases.py:178: x[k] = x[k] + a * x[k - 1]
            x = _ckpt.setitem(x, k, x[k] + a * x[k - 1])
        return (x,)

    def clip_and_sweep(x, a, steps):
        # before the loop, golden_cases.py:170
        n = len(x)
        # the loop, golden_cases.py:171-178: for t in range(steps):
        (x,) = _ckpt.checkpointed_for(
            clip_and_sweep_step,
            (x,),
            range(steps),
            _ckpt_scheme,
            params=(n, a),
            report=_ckpt_report,
        )
        # after the loop, golden_cases.py:179
        return np.sum(x)
