"""Run-time type checks for the public constructors.

`typechecked` is beartype configured so that a wrong argument type raises a plain `TypeError`
(what users catch), with beartype's message saying which parameter, what was given and what the
hint allows. Integers are not floats' subtypes here unless a hint says so, and bool is rejected
where an int is wanted by the constructors' own checks.
"""

from __future__ import annotations

from beartype import BeartypeConf, beartype

__all__ = ["typechecked"]

typechecked = beartype(conf=BeartypeConf(violation_type=TypeError, is_pep484_tower=True))
