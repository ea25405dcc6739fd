"""The two error types users catch.

`TransformError` is raised at decoration time when a function cannot be rewritten; it is a
`SyntaxError`, so ``filename``, ``lineno`` and ``offset`` point at the offending statement in the
user's own file, and tracebacks show that line. `CheckpointError` is raised at run time when a
checkpointed loop cannot be executed as planned (a loop length that disagrees with the scheme, a
state whose structure changes, a storage failure).
"""

from __future__ import annotations

__all__ = ["CheckpointError", "TransformError"]


class TransformError(SyntaxError):
    """A function cannot be rewritten by `checkpoint_struct`.

    Parameters
    ----------
    message
        What was found and what to write instead.
    filename, lineno, col_offset
        Where, in the user's file (1-based line, 0-based column as in `ast`).
    source_line
        The offending line of source, shown by tracebacks under the message.
    """

    def __init__(
        self,
        message: str,
        *,
        filename: str | None = None,
        lineno: int | None = None,
        col_offset: int | None = None,
        source_line: str | None = None,
    ) -> None:
        # SyntaxError's offset is 1-based; ast's col_offset is 0-based.
        offset = None if col_offset is None else col_offset + 1
        super().__init__(message, (filename, lineno, offset, source_line))
        self.col_offset = col_offset


class CheckpointError(RuntimeError):
    """A checkpointed loop cannot run as planned; the message says what and why."""
