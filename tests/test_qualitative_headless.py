"""Headless runners of notebook 09 in the real sandbox: pygame (SDL dummy driver), Tkinter (Xvfb)
and matplotlib (Agg), with programs that work (including endless event loops) and that crash."""

from __future__ import annotations

import shutil

import pytest

from phi_utils.qualitative.headless import run_headless, verdict_of, virtual_display
from phi_utils.qualitative.prompts import get_prompts
from phi_utils.qualitative.stages import combined_verdict, evaluate_completions, program_for

needs_xvfb = pytest.mark.skipif(shutil.which("Xvfb") is None,
                                reason="Xvfb not installed (apt-get install -y xvfb)")

PYGAME_LOOP = """
import pygame, random
pygame.init()
screen = pygame.display.set_mode((400, 600))
x, y = 200, 400
while True:  # the paper's ball game: never ends by itself
    for event in pygame.event.get():
        if event.type == pygame.KEYDOWN and event.key == pygame.K_SPACE:
            x, y = 200, 400
    x = min(max(x + random.randint(-10, 10), 0), 400)
    y = min(max(y + random.randint(-20, 20), 0), 600)
    screen.fill((0, 0, 0))
    pygame.draw.circle(screen, (255, 0, 0), (x, y), 10)
    pygame.display.flip()
    pygame.time.wait(10)
"""
PYGAME_CRASH = """
import pygame
pygame.init()
screen = pygame.display.set_mode((400, 600))
pygame.draw.ball(screen, (255, 0, 0), (10, 10), 5)
"""
TK_LOOP = """
import tkinter as tk
s = ""
root = tk.Tk()
field = tk.Entry(root)
field.pack(side=tk.TOP)
def submit():
    global s
    s = field.get()
tk.Button(root, text="submit", command=submit).pack()
root.mainloop()
"""
TK_EXITS = """
import tkinter as tk
root = tk.Tk()
label = tk.Label(root, text="pew")
label.pack()
root.update()
print("width", root.winfo_width())
root.destroy()
"""
TK_CRASH = """
import tkinter as tk
root = tk.Tk()
field = tk.Textfield(root)
root.mainloop()
"""
MPL_OK = """
import matplotlib.pyplot as plt
counts = {"os": 10, "sys": 5}
fig, ax = plt.subplots()
ax.bar(list(counts), list(counts.values()))
ax.set_yscale("log")
plt.xticks(rotation=90)
fig.set_dpi(100)
plt.show()
print("shown")
"""
MPL_CRASH = """
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.rotate(90)
"""


def test_pygame_loop_runs_until_cut_and_a_bad_call_crashes():
    ok, bad = run_headless([PYGAME_LOOP, PYGAME_CRASH], ["pygame", "pygame"], timeout_s=3.0)
    assert ok.verdict == "runs" and ok.cut_at_limit and ok.error is None
    assert bad.verdict == "crashes" and not bad.cut_at_limit
    assert "AttributeError" in bad.error and "ball" in bad.error


@needs_xvfb
def test_tkinter_on_a_virtual_display():
    loop, exits, crash = run_headless([TK_LOOP, TK_EXITS, TK_CRASH], ["tkinter"] * 3, timeout_s=3.0)
    assert loop.verdict == "runs" and loop.cut_at_limit, loop.stderr
    assert exits.verdict == "runs" and not exits.cut_at_limit and "width" in exits.stdout, exits.stderr
    assert crash.verdict == "crashes" and "Textfield" in crash.error


def test_tkinter_without_a_display_crashes():
    # the control for the test above: the same program with no DISPLAY cannot open a window
    (res,) = run_headless([TK_EXITS], ["python"], timeout_s=5.0)
    assert res.verdict == "crashes" and "display" in (res.error or "").lower()


def test_matplotlib_agg():
    ok, bad = run_headless([MPL_OK, MPL_CRASH], ["matplotlib", "matplotlib"], timeout_s=10.0)
    assert ok.verdict == "runs" and not ok.cut_at_limit and "shown" in ok.stdout, ok.stderr
    assert bad.verdict == "crashes" and "rotate" in bad.error


@needs_xvfb
def test_virtual_display_is_started_and_stopped():
    import os
    with virtual_display() as display:
        n = display.lstrip(":")
        assert os.path.exists(f"/tmp/.X11-unix/X{n}")
    assert not os.path.exists(f"/tmp/.X{n}-lock")


def test_verdict_rules():
    assert verdict_of("passed", 0, "") == ("runs", False, None)
    assert verdict_of("timed out", None, "") == ("runs", True, None)  # an event loop cut at the limit
    v, cut, err = verdict_of("timed out", None, "", event_loop=False)    # a script that hangs
    assert (v, cut) == ("crashes", True) and "did not finish" in err
    v, cut, err = verdict_of("timed out", None, "Exception in Tkinter callback\nTraceback (most recent call last):\n"
                                                "  File \"x\", line 1\nNameError: name 's' is not defined\n")
    assert (v, cut) == ("crashes", True) and err.startswith("NameError")
    assert verdict_of("failed", 1, "Traceback (most recent call last):\nValueError: bad\n")[0::2] == ("crashes", "ValueError: bad")
    assert combined_verdict("runs", api_ok=False) == "calls non-existent API"
    assert combined_verdict("no code", api_ok=True) == "no code"


SVD_BODY = """    for p in model.parameters():
        if p.grad is None or p.grad.dim() != 2:
            continue
        U, S, Vh = torch.linalg.svd(p.grad, full_matrices=False)
        with torch.no_grad():
            p.add_(U[:, :k] @ torch.diag(S[:k]) @ Vh[:k, :] * p.norm())
"""
CHAT_ANSWER = """ You can increase the dpi and rotate the labels, for example:
```python
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.plot([1, 2, 3])
ax.set_dpi(300)
ax.rotate(90)
```
"""


def test_paper_prompts_end_to_end_torch_and_chat():
    # the driver of the SVD prompt builds a Linear layer, backpropagates and calls the function
    prompts = get_prompts(["torch_svd_update", "chat_pyplot_ta", "pygame_ball"])
    rows = evaluate_completions(prompts, {"m": [SVD_BODY, CHAT_ANSWER, "pygame.init()\npygame.dispaly.set_mode((4, 4))\n"]},
                                timeout_s=3.0, script_timeout_s=60.0)
    svd, chat, game = rows
    assert svd["verdict"] == "runs" and not svd["cut_at_limit"] and "torch.Size([3, 4])" in svd["stdout"], svd
    # the paper's own chat answer style: runs into the missing Axes method and is flagged statically
    assert chat["verdict"] == "calls non-existent API" and chat["run_verdict"] == "crashes"
    assert {i["expr"] for i in chat["api_issues"]} == {"ax.set_dpi", "ax.rotate"}
    assert game["verdict"] == "calls non-existent API" and "dispaly" in game["error"]


def test_completion_without_code_and_the_driver():
    (alice,) = get_prompts(["alice_bob_charles"])
    assert program_for(alice, "    # just a comment\n") == ("", False)
    body = ("    import random\n    a = b = 0\n    for _ in range(30):\n        x = random.randint(333, 678)\n"
            "        y = random.randint(x, 888)\n        z = random.randint(123, y)\n"
            "        if (x - z) % int(y ** 0.5) == 0:\n            a += 1\n        else:\n            b += 1\n"
            "    return a, b\n")
    code, has = program_for(alice, body + "    this line is cut mid")
    assert has and code.rstrip().endswith("print(simulate_game())")
    rows = evaluate_completions([alice], {"m": [body], "empty": [""]}, timeout_s=5.0)
    assert rows[0]["verdict"] == "runs" and rows[1]["verdict"] == "no code"
