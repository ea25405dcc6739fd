# warm_then_run (golden_cases.py:134), rewritten by ckpt_transform.checkpoint_struct.
# The loop at golden_cases.py:137-138 is one call to checkpointed_for; this text is what runs.
# scheme:     Revolve(snapshots=2)
# state:      x
# parameters: none
# by name:    np
#
# _ckpt_scope is never called: it gives the functions inside it their free names. They are built
# from their compiled code with the globals, closure cells and defaults of warm_then_run.


def _ckpt_scope(_ckpt, _ckpt_scheme, _ckpt_report):
    def warm_then_run_step(_ckpt_state, step):
        (x,) = _ckpt_state
        # loop body, golden_cases.py:138
        x = np.cos(x) * x
        return (x,)

    def warm_then_run(x, warmup, steps):
        # before the loop, golden_cases.py:135-136
        for w in range(warmup):
            x = 0.5 * (x + 1.0)
        # the loop, golden_cases.py:137-138: for step in range(1, steps + 1):
        _ckpt_range = range(1, steps + 1)
        (x,) = _ckpt.checkpointed_for(
            warm_then_run_step,
            (x,),
            _ckpt_range,
            _ckpt_scheme,
            params=(),
            report=_ckpt_report,
            progress=True,
        )
        if _ckpt_range:
            step = _ckpt_range[-1]
        # after the loop, golden_cases.py:139
        return x, step
