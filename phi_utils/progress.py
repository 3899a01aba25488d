"""Progress bars: a live bar in a terminal or JupyterLab, a handful of plain lines in a headless run.

`python -m phi_utils run` sets `PHI_HEADLESS=1` for its notebook kernels. There, a redrawn bar would be
stored as one notebook output per update (and tqdm.auto warns that IProgress is missing), so
`tqdm` here prints one line at 0%, 25%, 50%, 75% and 100% instead (every 60 s when the total is
unknown). Everywhere else it is `tqdm.auto.tqdm`.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from tqdm import tqdm as _std_tqdm

HEADLESS_ENV = "PHI_HEADLESS"
QUARTERS = 4
UNKNOWN_TOTAL_INTERVAL_S = 60.0


def headless() -> bool:
    return os.environ.get(HEADLESS_ENV) == "1"


class _DropRedraws:
    """The stream tqdm writes its redraw control characters to: those are dropped, lines pass."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, s: str) -> None:
        if s.strip("\r\n \x1b[A"):
            self.stream.write(s)

    def flush(self) -> None:
        self.stream.flush()


class LineProgress(_std_tqdm):  # type: ignore[misc]
    """tqdm that prints a full line per quarter of the work instead of redrawing one bar."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._printed: tuple[int, float] = (-1, 0.0)  # (quarter or n, time) of the last line
        kwargs["file"] = _DropRedraws(kwargs.get("file") or sys.stderr)
        kwargs.setdefault("ascii", True)
        kwargs.setdefault("ncols", 100)
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "":  # tqdm clearing a bar that does not stay
            return True
        if self.total:
            mark = QUARTERS * self.n // self.total
            if mark == self._printed[0]:
                return True
        else:
            mark = self.n
            if time.time() - self._printed[1] < UNKNOWN_TOTAL_INTERVAL_S and self._printed[0] >= 0:
                return True
        self._printed = (mark, time.time())
        self.fp.stream.write(self.__str__() + "\n")
        self.fp.stream.flush()
        return True


if headless():  # tqdm.auto is not even imported: in a kernel without ipywidgets it warns
    tqdm = LineProgress
else:
    from tqdm.auto import tqdm
