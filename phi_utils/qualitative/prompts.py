"""The paper's qualitative prompts (§3, Appendix A, Appendix B), rewritten from its descriptions.

The paper prints its prompts as images/listings; we rewrite each one faithfully from the text
(the task, the numbers, the names it uses) rather than copying it verbatim. Each prompt records
the paper section it comes from, which headless runner executes the completion (`kind`), and an
optional `driver`: a few lines appended after the completion when it is *run* (never shown to
the model) that call the function the prompt asked for, so that "runs" means the requested code
path executed, not only that a `def` was parsed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QualitativePrompt:
    name: str
    """Short identifier used in tables and file names."""
    paper_ref: str
    """Where the paper shows it (section / appendix)."""
    kind: str
    """Runner: `python`, `pygame`, `tkinter`, `matplotlib`, `torch` or `chat` (prose answer with code)."""
    prompt: str
    """Text given to the model; the completion continues it."""
    driver: str = ""
    """Code appended after prompt+completion when running it headlessly (not shown to the model)."""
    description: str = ""
    """What the paper reports about this prompt (shown in the HTML table)."""


_ALICE = '''def simulate_game():
    """Alice, Bob and Charles are playing a game. Alice first picks a random number from 333 to 678.
    Bob then picks a random number starting from Alice's number up to 888. Charles then picks a
    random number starting from 123 up to Bob's number. Alice gets one point if Alice's number
    minus Charles's number is divisible by the floor of the square root of Bob's number; otherwise
    Bob gets one point. Simulate 30 iterations and return Alice's and Bob's points.
    """
'''

_PYGAME = '''# Write a PyGame program.
# A ball is drawn in a 400 x 600 window. In every iteration of the main loop, the ball's x
# position changes by a random integer in (-10, 10) and its y position by a random integer in
# (-20, 20). The x position is clamped to [0, 400] and the y position to [0, 600]. When the user
# presses the space key, the ball is reset to (200, 400).
import pygame
import random
'''

_TKINTER = '''# Write a tkinter application.
# There is a textfield on the top, and a "submit" button and a "recover" button below it.
# When "submit" is pressed, read the text in the textfield into the global variable s.
# If s contains "pew", set the textfield to "pewpewpew?"; otherwise append "no pew..." to the
# text in the textfield. When "recover" is pressed, put s back into the textfield.
import tkinter as tk
'''

_BAR_CHART = '''import matplotlib.pyplot as plt


def plot_import_counts(counts: dict):
    """counts maps the name of an imported module to the number of times it was imported.
    Sort the dict by value in descending order and show the counts as a pyplot bar plot with
    font size 7, the x labels rotated by 90 degrees, a log-scale y axis labelled
    "Log Number of Times", the x axis labelled "Imports", and a figure dpi of 1000.
    """
'''

_CHAT = ("Student: I have a Python pyplot, I want to increase its resolution and rotate it, "
         "what should I do? TA:")

_D_INDICES = '''import numpy as np


def find_indices(A: list, B: list, C: list, D: np.ndarray, E: list) -> list:
    """A, B, C and E are lists of integers and D is a 2-D numpy array. Return the list of
    index pairs (i, j) of D such that D[i, j] is in the union of B and C, the row index i is
    not in A, and the column index j is in D (is one of D's values). Use a loop.
    """
'''

_SVD = '''import torch


def svd_gradient_update(model: torch.nn.Module, k: int) -> None:
    """For every parameter of the model that has a 2-D gradient, compute the SVD of the gradient,
    keep the top-k singular values (U_k, S_k, V_k), and update the parameter in place by adding
    U_k diag(S_k) V_k^T scaled by the norm of the parameter.
    """
'''

_ANIMATION = '''import numpy as np
import matplotlib.pyplot as plt
import matplotlib.animation as animation

# x runs from 1 to 20 and y = cos(x) / sqrt(x + 1). Animate the line being drawn step by step
# with pyplot, in red; once x[i] > 11, the line turns green.
'''

_NET = '''# Create a neural network class in PyTorch with {n} layers. Implement a new method "rr" in this
# class: it takes the input x, computes the output of each layer, and returns the sum of all the
# intermediate outputs (each layer's output), so all layers must have the same output size.
'''

PROMPTS: tuple[QualitativePrompt, ...] = (
    QualitativePrompt(
        "alice_bob_charles", "§3.1", "python", _ALICE,
        driver="\nprint(simulate_game())\n",
        description="phi-1 writes the loop with random.randint and int(bob ** 0.5); phi-1-base emits "
                    "meaningless self.* attributes; phi-1-small is close but with a wrong condition."),
    QualitativePrompt(
        "pygame_ball", "§3.2", "pygame", _PYGAME,
        description="phi-1: loop, key handling and clamping; phi-1-base: plausible APIs, wrong logic; "
                    "phi-1-small: the logic, wrong calls."),
    QualitativePrompt(
        "tkinter_pew", "§3.2", "tkinter", _TKINTER,
        description="phi-1 essentially correct (mis-copies 'pewpewpew?'); base/small invent Tkinter calls."),
    QualitativePrompt(
        "pyplot_bar_log", "§3 Fig. 3.1", "matplotlib", _BAR_CHART,
        driver="\nplot_import_counts({'os': 120, 'sys': 80, 'numpy': 45, 're': 30, 'json': 12})\n",
        description="Shown as code generated by phi-1 (sorted bar plot, log y, rotated labels, dpi 1000)."),
    QualitativePrompt(
        "chat_pyplot_ta", "§3.2 chat mode", "chat", _CHAT,
        description="phi-1 answers TA-style with a code example (which calls ax.set_dpi / ax.rotate, not "
                    "real Axes methods); phi-1-base one line; phi-1-small repeats the question."),
    QualitativePrompt(
        "numpy_d_indices", "App. A.1", "python", _D_INDICES,
        driver="\nprint(find_indices([0], [1, 2], [5], np.array([[1, 2, 3], [4, 5, 6]]), [7]))\n",
        description="Index search over a numpy matrix with set conditions."),
    QualitativePrompt(
        "torch_svd_update", "App. A.2", "torch", _SVD,
        driver=("\n_m = torch.nn.Linear(4, 3)\n_m(torch.randn(5, 4)).sum().backward()\n"
                "svd_gradient_update(_m, 2)\nprint(_m.weight.shape)\n"),
        description="phi-1 correct; base emits attribute lists; small uses np.linalg.svd and assigns "
                    "instead of adding."),
    QualitativePrompt(
        "pyplot_animation_green", "App. A.2", "matplotlib", _ANIMATION,
        description="phi-1 correct with FuncAnimation."),
    QualitativePrompt(
        "torch_net_3_layers_rr", "App. B (prompt length)", "torch", _NET.format(n=3),
        description="phi-1 succeeds with 3 layers."),
    QualitativePrompt(
        "torch_net_4_layers_rr", "App. B (prompt length)", "torch", _NET.format(n=4),
        description="phi-1 fails with 4 layers (the longer prompt)."),
    QualitativePrompt(
        "torch_net_4_layers_rr_import", "App. B (prompt length)", "torch", "import torch\n" + _NET.format(n=4),
        description="Prefixing `import torch` makes the 4-layer version succeed for phi-1."),
)
"""The §3 / App. A / App. B prompts, in the paper's order."""


def get_prompts(names: list[str] | None = None) -> list[QualitativePrompt]:
    """All prompts, or the named ones (unknown names raise a KeyError naming them)."""
    if not names:
        return list(PROMPTS)
    by_name = {p.name: p for p in PROMPTS}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise KeyError(f"unknown qualitative prompt(s) {missing}; known: {sorted(by_name)}")
    return [by_name[n] for n in names]
