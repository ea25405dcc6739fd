# sumheat_elementwise (golden_cases.py:122), rewritten by ckpt_transform.checkpoint_struct.
# The loop at golden_cases.py:123-128 is one call to checkpointed_for; this text is what runs.
# scheme:     Revolve(snapshots=4)
# state:      heat.Tlast, heat.Tnext
# parameters: heat_fields (the other fields of heat)
# by name:    none
#
# _ckpt_scope is never called: it gives the functions inside it their free names. They are built
# from their compiled code with the globals, closure cells and defaults of sumheat_elementwise.


def _ckpt_scope(_ckpt, _ckpt_scheme, _ckpt_report):
    def sumheat_elementwise_step(_ckpt_state, t, heat_fields):
        heat_Tlast, heat_Tnext = _ckpt_state
        heat = _ckpt.struct_view(heat_fields, Tlast=heat_Tlast, Tnext=heat_Tnext)
        # loop body, golden_cases.py:124-128
        # rewritten from golden_cases.py:124: heat.Tlast[:] = heat.Tnext
        heat.Tlast = _ckpt.setitem(heat.Tlast, _ckpt.index[:], heat.Tnext)
        for i in range(1, heat.n - 1):
            # rewritten from golden_cases.py:126-128: heat.Tnext[i] = heat.Tlast[i] + heat.lam *
            #     (heat.Tlast[i - 1] - 2 * heat.Tlast[i] + heat.Tlast[i + 1])
            heat.Tnext = _ckpt.setitem(
                heat.Tnext,
                i,
                heat.Tlast[i] + heat.lam * (heat.Tlast[i - 1] - 2 * heat.Tlast[i] + heat.Tlast[i + 1]),
            )
        return heat.Tlast, heat.Tnext

    def sumheat_elementwise(heat, tsteps):
        # the loop, golden_cases.py:123-128: for t in range(tsteps):
        heat_Tlast, heat_Tnext = _ckpt.checkpointed_for(
            sumheat_elementwise_step,
            (heat.Tlast, heat.Tnext),
            range(tsteps),
            _ckpt_scheme,
            params=(_ckpt.other_fields(heat, 'Tlast', 'Tnext'),),
            report=_ckpt_report,
            refill=(0, 1),
        )
        heat = _ckpt.struct_update(heat, Tlast=heat_Tlast, Tnext=heat_Tnext)
        # after the loop, golden_cases.py:129
        return np.sum(heat.Tnext)
