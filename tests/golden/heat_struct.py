# sumheat (golden_cases.py:41), rewritten by ckpt_transform.checkpoint_struct.
# The loop at golden_cases.py:42-44 is one call to checkpointed_for; this text is what runs.
# scheme:     Revolve(snapshots=4)
# state:      heat.Tlast, heat.Tnext
# parameters: heat_fields (the other fields of heat)
# by name:    advance
#
# _ckpt_scope is never called: it gives the functions inside it their free names. They are built
# from their compiled code with the globals, closure cells and defaults of sumheat.


def _ckpt_scope(_ckpt, _ckpt_scheme, _ckpt_report):
    def sumheat_step(_ckpt_state, i, heat_fields):
        heat_Tlast, heat_Tnext = _ckpt_state
        heat = _ckpt.struct_view(heat_fields, Tlast=heat_Tlast, Tnext=heat_Tnext)
        # loop body, golden_cases.py:43-44
        heat.Tlast = heat.Tnext
        heat.Tnext = advance(heat)
        return heat.Tlast, heat.Tnext

    def sumheat(heat, tsteps):
        # the loop, golden_cases.py:42-44: for i in range(tsteps):
        heat_Tlast, heat_Tnext = _ckpt.checkpointed_for(
            sumheat_step,
            (heat.Tlast, heat.Tnext),
            range(tsteps),
            _ckpt_scheme,
            params=(_ckpt.other_fields(heat, 'Tlast', 'Tnext'),),
            report=_ckpt_report,
        )
        heat = _ckpt.struct_update(heat, Tlast=heat_Tlast, Tnext=heat_Tnext)
        # after the loop, golden_cases.py:45
        return np.sum(heat.Tnext)
