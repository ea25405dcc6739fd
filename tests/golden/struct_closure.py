# cool (golden_cases.py:85), rewritten by ckpt_transform.checkpoint_struct.
# The loop at golden_cases.py:86-87 is one call to checkpointed_for; this text is what runs.
# scheme:     Periodic(period=5)
# state:      body.T
# parameters: body_fields (the other fields of body), ambient (closure)
# by name:    none
#
# _ckpt_scope is never called: it gives the functions inside it their free names. They are built
# from their compiled code with the globals, closure cells and defaults of cool.


def _ckpt_scope(_ckpt, _ckpt_scheme, _ckpt_report, ambient):
    def cool_step(_ckpt_state, i, body_fields, ambient):
        (body_T,) = _ckpt_state
        body = _ckpt.struct_view(body_fields, T=body_T)
        # loop body, golden_cases.py:87
        body.T = body.T + body.h * (ambient - body.T)
        return (body.T,)

    def cool(body, steps):
        # the loop, golden_cases.py:86-87: for i in range(steps):
        (body_T,) = _ckpt.checkpointed_for(
            cool_step,
            (body.T,),
            range(steps),
            _ckpt_scheme,
            params=(_ckpt.other_fields(body, 'T'), ambient),
            report=_ckpt_report,
        )
        body = _ckpt.struct_update(body, T=body_T)
        # after the loop, golden_cases.py:88
        return body.T
