"""Checkpointing schemes: pure planners that yield action objects and never touch a state.

* `actions` -- the frozen action dataclasses (advance, store, restore, record, reverse, free...).
* `base` -- the `Scheme` interface every scheme implements.
* `revolve`, `periodic`, `online_r2`, `store_all` -- the schemes.
* `cost` -- closed forms: binomial counts, optimal step counts, memory bounds.
* `validate` -- the mock executor that replays a schedule and checks the action contract.

Nothing here imports numpy, an AD framework, storage or the run time (see docs/contributing.md).
"""
