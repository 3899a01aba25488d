"""The static API-existence check (notebook 09) on crafted snippets, against the installed libraries."""

from __future__ import annotations

import pytest

from phi_utils.qualitative.api_check import check_api, extract_code, trim_to_parseable


def _exprs(code: str) -> set[str]:
    return {i.expr for i in check_api(code).issues}


def test_flags_the_papers_pyplot_hallucinations():
    # phi-1's own chat answer in §3 calls these; matplotlib has neither on Axes, nor set_dpi in pyplot
    code = ("import matplotlib.pyplot as plt\n"
            "fig, ax = plt.subplots()\n"
            "ax.plot([1, 2, 3])\n"
            "ax.set_dpi(300)\n"
            "ax.rotate(90)\n"
            "plt.set_dpi(300)\n"
            "fig.set_dpi(300)\n"          # real: Figure.set_dpi exists
            "plt.xticks(rotation=90)\n")  # real
    assert _exprs(code) == {"ax.set_dpi", "ax.rotate", "plt.set_dpi"}
    report = check_api(code)
    assert any("'Axes' object has no attribute 'rotate'" in i.reason for i in report.issues)
    assert report.checked >= 4


def test_flags_invented_tkinter_widgets_but_not_real_ones():
    bad = "import tkinter as tk\nroot = tk.Tk()\nfield = tk.Textfield(root)\nfield.pack()\n"
    assert _exprs(bad) == {"tk.Textfield"}
    good = ("import tkinter as tk\nfrom tkinter import messagebox\nroot = tk.Tk()\nroot.title('pew')\n"
            "entry = tk.Entry(root)\nentry.pack(side=tk.TOP)\nentry.insert(tk.END, 'x')\n"
            "entry.delete(0, tk.END)\nbutton = tk.Button(root, text='submit')\nbutton.pack()\nroot.mainloop()\n")
    report = check_api(good)
    assert report.ok, report.summary()
    assert report.checked >= 8


def test_pygame_and_torch_chains_resolve_through_submodules():
    code = ("import pygame\nimport torch\nimport torch.nn as nn\n"
            "pygame.init()\nscreen = pygame.display.set_mode((400, 600))\nscreen.fill((0, 0, 0))\n"
            "pygame.draw.circle(screen, (255, 0, 0), (10, 10), 5)\npygame.display.flip()\n"
            "pygame.display.upate()\nscreen.blitz(screen, (0, 0))\n"
            "layer = nn.Linear(3, 3)\nu, s, v = torch.linalg.svd(torch.randn(3, 3))\n"
            "torch.nn.functional.relux(torch.zeros(1))\n")
    assert _exprs(code) == {"pygame.display.upate", "screen.blitz", "torch.nn.functional.relux"}


def test_missing_modules_and_names_in_from_imports():
    code = "import pygame_gui\nfrom matplotlib import pyplott\nfrom numpy import arange, not_in_numpy\n"
    reasons = [i.reason for i in check_api(code).issues]
    assert len(reasons) == 3
    assert "no module named 'pygame_gui'" in reasons[0]
    assert "cannot import name 'not_in_numpy'" in reasons[2]


@pytest.mark.parametrize("code", [
    # a parameter shadows the module name: not judged
    "import matplotlib.pyplot as plt\ndef draw(plt):\n    plt.rotate(90)\n",
    # a subplot grid is an array of Axes, not an Axes
    "import matplotlib.pyplot as plt\nfig, axs = plt.subplots(2, 2)\nfor a in axs.flatten():\n    a.plot([1])\n",
    # attributes the snippet assigns itself exist
    "import tkinter as tk\nroot = tk.Tk()\nroot.my_text = 'x'\nprint(root.my_text)\n",
    # nn.Module resolves submodules through __getattr__: instance attributes are not judged
    "import torch.nn as nn\nm = nn.Sequential(nn.Linear(2, 2))\nm.weight_of_mine\n",
    # instance attributes set in __init__ (found in the class source) exist
    "import tkinter as tk\nroot = tk.Tk()\nprint(root.children)\n",
])
def test_no_false_alarms_when_the_value_is_unknown_or_real(code):
    report = check_api(code)
    assert report.ok, report.summary()


def test_truncated_generation_is_checked_up_to_the_cut():
    code = "import numpy as np\nx = np.arange(3)\nnp.fake_function(x)\ny = np.sum(\n    x,"
    trimmed, was_trimmed = trim_to_parseable(code)
    assert was_trimmed and "np.sum" not in trimmed
    assert _exprs(code) == {"np.fake_function"}
    assert not check_api("def (:\n").parsed


def test_extract_code_from_a_prose_answer():
    text = ("TA: You can set the dpi and rotate the labels.\n```python\nimport matplotlib.pyplot as plt\n"
            "fig, ax = plt.subplots()\nax.set_dpi(300)\n```\nHope that helps.")
    code = extract_code(text)
    assert "ax.set_dpi(300)" in code and "TA:" not in code
    assert _exprs(code) == {"ax.set_dpi"}
    bare = "You should call plt.figure(dpi=300) and then\nplt.xticks(rotation=90)\nGood luck"
    assert extract_code(bare) == "plt.xticks(rotation=90)"  # the prose line does not parse
