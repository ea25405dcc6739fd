"""The run time: the one place where schemes, storage and backends meet.

* `driver` -- executes a scheme's actions: the primal run, the reverse sweep, parameter adjoints;
  `checkpointed_for` and `checkpointed_while`.
* `stats` -- `RunStats`, what a run did (evaluations, snapshots, bytes, states held at once).
* `support` -- the helpers the generated code of `checkpoint_struct` calls.
* `tree` -- flattening states (tuples, lists, dicts, dataclasses) into leaves and back.
"""
