"""ckpt_transform: checkpointed reverse-mode derivatives of time-stepping loops."""

from ckpt_transform.errors import CheckpointError, TransformError

__all__ = ["CheckpointError", "TransformError"]
