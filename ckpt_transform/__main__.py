"""``python -m ckpt_transform``: the ``ckpt-transform`` command (see `ckpt_transform.cli`)."""

from ckpt_transform.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
