"""The substance rule (stubs dropped before rating) and the rated window of a file."""

from __future__ import annotations

from phi_utils.filtering.annotate import build_prompt
from phi_utils.filtering.substance import informative_window, no_substance

LICENCE = "".join(f"# Copyright (c) 2020 Example Authors. Licensed under the Apache License {i}.\n" for i in range(12))
DOCSTRING = '"""Utilities.\n\nThis module is part of a larger package and provides helpers.\n"""\n'
IMPORTS = "".join(f"import module_{i}\n" for i in range(15)) + "from pkg.sub import (\n    a,\n    b,\n    c,\n)\n"
FUNCTION = ('def binary_search(items, target):\n'
            '    """Return the index of target in the sorted list items, or -1."""\n'
            '    lo, hi = 0, len(items) - 1\n'
            '    while lo <= hi:\n'
            '        mid = (lo + hi) // 2\n'
            '        if items[mid] == target:\n'
            '            return mid\n'
            '        if items[mid] < target:\n'
            '            lo = mid + 1\n'
            '        else:\n'
            '            hi = mid - 1\n'
            '    return -1\n')
CRAFTED = LICENCE + DOCSTRING + IMPORTS + "\n\n" + FUNCTION + "\n" + "CONSTANT = 3\n"


def test_window_skips_licence_docstring_and_imports():
    assert len(LICENCE + DOCSTRING + IMPORTS) > 1000  # a first-characters cut would show none of the function
    win = informative_window(CRAFTED, 500)
    shown = CRAFTED[win.start:win.end]
    assert win.start == CRAFTED.index("def binary_search") and FUNCTION in shown
    assert "Copyright" not in shown and "import module_" not in shown and len(shown) <= 500
    assert not win.whole and win.n_chars == len(CRAFTED)


def test_window_whole_file_when_it_fits_and_a_tight_budget():
    win = informative_window(FUNCTION, 10_000)
    assert (win.start, win.end) == (0, len(FUNCTION)) and win.whole
    tight = informative_window(CRAFTED, 120)  # starts at the def, holds only whole lines
    assert tight.start == CRAFTED.index("def binary_search") and tight.end - tight.start <= 120
    assert CRAFTED[tight.end - 1] == "\n"


def test_window_prefers_the_dense_function_among_several():
    thin = "def configure():\n" + "".join(f"    # step {i} is described in the manual\n" for i in range(20)) + "    pass\n"
    text = LICENCE + thin + "\n" + FUNCTION
    win = informative_window(text, len(FUNCTION) + 40)
    assert text[win.start:win.end].startswith("def binary_search")


def test_window_on_unparseable_file_falls_back_to_lines():
    text = LICENCE + IMPORTS + "def broken(:\n    pass\n\n" + FUNCTION
    win = informative_window(text, 400)
    assert "import module_" not in text[win.start:win.end] and text[win.start:].startswith("def ")


def test_prompt_records_the_rated_range():
    _, user, info = build_prompt(CRAFTED, 500)
    assert (info["window_start"], info["window_end"]) == (CRAFTED.index("def binary_search"),
                                                         informative_window(CRAFTED, 500).end)
    assert "def binary_search" in user and "Copyright" not in user


def test_substance_rule_on_stubs():
    assert no_substance("pkg/__init__.py", "") == "empty"
    assert no_substance("pkg/__init__.py", "# just a comment\n\n") == "empty"
    assert no_substance("pkg/__init__.py", '"""Package."""\n') == "empty"
    assert no_substance("jupyter_events/_version.py", '__version__ = "0.6.3"\nversion_info = (0, 6, 3)\n') == "version_file"
    stub = ('"""Re-exports."""\nfrom .core import Engine, run\nfrom .util import *\n'
            '__all__ = ["Engine", "run"]\n__version__ = "1.0"\n'
            'try:\n    from ._speedups import fast\nexcept ImportError:\n    fast = None\n')
    assert no_substance("pkg/__init__.py", stub) is None  # `fast = None` is not a dunder: a real (tiny) fallback
    assert no_substance("pkg/__init__.py", stub.replace("    fast = None\n", "    pass\n")) == "reexport_stub"
    assert no_substance("pkg/__init__.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import B\n") == "reexport_stub"


def test_substance_rule_keeps_real_code():
    assert no_substance("pkg/__init__.py", "from .core import run\n\ndef main():\n    run()\n") is None
    assert no_substance("algo/search.py", FUNCTION) is None
    assert no_substance("script.py", "for i in range(3):\n    print(i)\n") is None
    assert no_substance("broken.py", "def f(:\n") is None  # left to the teacher
