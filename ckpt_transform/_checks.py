"""Run-time type checks for the public constructors.

`typechecked` is beartype configured so that a wrong argument type raises a plain `TypeError`
(what users catch), with beartype's message saying which parameter, what was given and what the
hint allows. Integers are not floats' subtypes here unless a hint says so, and bool is rejected
where an int is wanted by the constructors' own checks.
"""

from __future__ import annotations

from beartype import BeartypeConf, beartype

__all__ = ["check_int", "check_max_steps", "typechecked"]

typechecked = beartype(conf=BeartypeConf(violation_type=TypeError, is_pep484_tower=True))


def check_int(name: str, value: object, least: int) -> None:
    """Raise unless ``value`` is an int (not a bool) ``>= least``, saying what was given."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int >= {least}, got the bool {value!r}")
    if not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {least}, got {value!r}")
    if value < least:
        raise ValueError(f"{name} must be an int >= {least}, got {value!r}")


def check_max_steps(max_steps: object, what: str = "an int >= 0") -> None:
    """Raise a `TypeError` unless ``max_steps`` is an int (not a bool) >= 0: the while loop's
    bound on the JAX backend, checked the same way where it is given and where it is used."""
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 0:
        raise TypeError(f"max_steps must be {what}, got {max_steps!r}")
