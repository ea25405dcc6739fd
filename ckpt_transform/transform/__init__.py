"""Compile time: a decorated function's source rewritten into a checkpointed loop (see pipeline)."""
