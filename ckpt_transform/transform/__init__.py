"""Compile time: a decorated function's source in, rewritten source out; no numerics here.

The passes, run in this order by `pipeline`: `parse` (read and parse the source, find the loop),
`fence` (reject what cannot be rewritten), `analysis` (carried state, struct fields, parameters,
loop index), `rewrite` (the loop body becomes a step function, the loop one driver call),
`codegen` (readable text with a header, compiled through linecache and bound like the original).
Shared by them: `naming` (deterministic names), `nodes` and `templates` (building nodes) and
`text` (a node's source text), `effects` (what the helpers a body calls write).
"""
