"""The model's code as a reader of §2.3 wants to see it: a module's method source, from the class that runs."""

from __future__ import annotations

import inspect
import textwrap


def method_source(cls: type, name: str = "forward") -> str:
    """The source of `cls.name` as defined (dedented), e.g. `method_source(Block)` for the parallel block."""
    return textwrap.dedent(inspect.getsource(getattr(cls, name)))
