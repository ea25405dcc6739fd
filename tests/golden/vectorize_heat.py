# sumheat_vectorized (golden_cases.py:144), rewritten by ckpt_transform.checkpoint_struct.
# The loop at golden_cases.py:145-150 is one call to checkpointed_for; this text is what runs.
# scheme:     Revolve(snapshots=4)
# state:      heat.Tlast, heat.Tnext
# parameters: heat_fields (the other fields of heat)
# by name:    np
#
# _ckpt_scope is never called: it gives the functions inside it their free names. They are built
# from their compiled code with the globals, closure cells and defaults of sumheat_vectorized.


def _ckpt_scope(_ckpt, _ckpt_scheme, _ckpt_report):
    def sumheat_vectorized_step(_ckpt_state, t, heat_fields):
        heat_Tlast, heat_Tnext = _ckpt_state
        heat = _ckpt.struct_view(heat_fields, Tlast=heat_Tlast, Tnext=heat_Tnext)
        # loop body, golden_cases.py:146-150
        heat.Tlast = np.array(heat.Tnext)
        # vectorised from golden_cases.py:147-150: for i in range(1, heat.n - 1)
        # legal: heat.Tnext written and read only at [i]; heat.Tlast not written: no iteration reads
        #     what another writes
        # the loop as written runs when a slice would leave its array, an operand is not as assumed
        #     or the range is empty (see _ckpt.fits)
        if _ckpt.fits(((1, heat.n - 1),), heat.Tlast, ((0, 0, -1, 1),), heat.Tnext, ((0, 0),), scalars=(heat.lam,)):
            heat.Tnext = _ckpt.setitem(
                heat.Tnext,
                _ckpt.index[1:heat.n - 1],
                heat.Tlast[1:heat.n - 1] + heat.lam * (heat.Tlast[0:heat.n - 2] - 2 * heat.Tlast[1:heat.n - 1] + heat.Tlast[2:heat.n]),
            )
        else:
            for i in range(1, heat.n - 1):
                # rewritten from golden_cases.py:148-150: heat.Tnext[i] = heat.Tlast[i] + heat.lam *
                #     (heat.Tlast[i - 1] - 2 * heat.Tlast[i] + heat.Tlast[i + 1])
                heat.Tnext = _ckpt.setitem(
                    heat.Tnext,
                    i,
                    heat.Tlast[i] + heat.lam * (heat.Tlast[i - 1] - 2 * heat.Tlast[i] + heat.Tlast[i + 1]),
                )
        return heat.Tlast, heat.Tnext

    def sumheat_vectorized(heat, tsteps):
        # the loop, golden_cases.py:145-150: for t in range(tsteps):
        heat_Tlast, heat_Tnext = _ckpt.checkpointed_for(
            sumheat_vectorized_step,
            (heat.Tlast, heat.Tnext),
            range(tsteps),
            _ckpt_scheme,
            params=(_ckpt.other_fields(heat, 'Tlast', 'Tnext'),),
            report=_ckpt_report,
            refill=(1,),
        )
        heat = _ckpt.struct_update(heat, Tlast=heat_Tlast, Tnext=heat_Tnext)
        # after the loop, golden_cases.py:151
        return np.sum(heat.Tnext)
