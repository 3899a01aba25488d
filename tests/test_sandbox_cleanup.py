"""The fork server's clean-up after each program wipes its own scratch only: never a read-only bind
inside /tmp (such as a virtual environment under /tmp, bound back into the sandbox)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from phi_utils.sandbox import bwrap_path, run_programs

pytestmark = pytest.mark.skipif(bwrap_path() is None, reason="the fork server runs only with bubblewrap")


def _big_tree(root: Path, dirs: int = 300, files: int = 100) -> None:
    for d in range(dirs):
        sub = root / f"d{d:03d}"
        sub.mkdir(parents=True)
        for f in range(files):
            (sub / f"f{f:03d}.py").write_bytes(b"")


def test_clean_up_does_not_walk_a_read_only_bind_under_tmp(tmp_path):
    tree = tmp_path / "env"
    _big_tree(tree)  # 30,000 files: walking them costs each program ~0.1-0.3 s
    assert str(tree).startswith("/tmp/")
    n = 30
    codes = ["import os\nopen('/tmp/left.txt', 'w').write('x')\nos.makedirs('/tmp/a/b/c', exist_ok=True)"] * n

    def timed(binds: list[str]) -> float:
        run_programs(["pass"], workers=1, progress=False, ro_binds=binds)  # warm: imports, first server
        t = time.perf_counter()
        res = run_programs(codes, workers=1, progress=False, ro_binds=binds)
        assert all(r.passed for r in res), [r.detail for r in res if not r.passed]
        return time.perf_counter() - t

    base = timed([])
    bound = timed([str(tree)])
    # Same programs, same worker; the bind may cost a little start-up, never a walk per program.
    assert bound < 2 * base + 1.0, f"{n} programs: {bound:.2f} s with the bind vs {base:.2f} s without"

    # The scratch is still wiped between programs, and the bind is intact and visible.
    check = [f"import os\nassert not os.path.exists('/tmp/left.txt') and not os.path.exists('/tmp/a')\n"
             f"assert len(os.listdir({str(tree / 'd000')!r})) == 100"] * 3
    res = run_programs(codes[:1] + check, workers=1, progress=False, ro_binds=[str(tree)])
    assert all(r.passed for r in res), [r.detail for r in res]
    assert len(list((tree / "d299").iterdir())) == 100
