"""What a reader of §2.2 wants to see, rebuilt from the seeds that made it: a textbook prompt with its
random draws and the passage the teacher wrote (notebook 03), an exercise prompt and one exercise with
the outcome of running its tests (notebook 04)."""

from __future__ import annotations

from typing import Any, Sequence

from .exercises import exercise_messages
from .textbooks import regenerate_prompt
from .topics import draw_exercise

TEXTBOOK_DRAWS = ("seed", "category", "topic", "audience", "style", "words")
EXERCISE_DRAWS = ("seed", "function_name", "category", "topic", "audience")


def first_generated(rows: Sequence[dict[str, Any]], status: str = "kept") -> dict[str, Any] | None:
    """The first teacher-generated row with `status`, else the first generated one, else None."""
    gen = [r for r in rows if r.get("origin") == "generated"]
    return next((r for r in gen if r.get("status") == status), gen[0] if gen else None)


def textbook_card(row: dict[str, Any], n_words: int) -> str:
    """The draws, the prompt rebuilt from the seed (`regenerate_prompt`), and the generated passage."""
    draws = {k: row.get(k) for k in TEXTBOOK_DRAWS}
    return (f"--- DRAWS\n{draws}\n--- PROMPT (rebuilt from seed {row['seed']})\n{regenerate_prompt(row, n_words)}\n"
            f"--- PASSAGE (status: {row.get('status')})\n{row.get('text', '')}")


def exercise_card(row: dict[str, Any]) -> str:
    """The draws, the teacher's prompt rebuilt from the seed (`exercise_messages`), the parsed exercise
    and the outcome of running its solution against its own tests in the sandbox."""
    draw = draw_exercise(int(row["seed"]))
    messages = exercise_messages(draw)
    program = (row.get("prompt") or "") + (row.get("solution") or "") + "\n" + "\n".join(row.get("tests") or [])
    outcome = "passed its tests" if row.get("status") == "kept" else f"{row.get('status')}: {(row.get('detail') or '')[:300]}"
    return (f"--- DRAWS\n{ {k: getattr(draw, k) for k in EXERCISE_DRAWS} }\n--- SYSTEM\n{messages[0]['content']}\n"
            f"--- USER\n{messages[-1]['content']}\n--- EXERCISE\n{program}\n--- TEST OUTCOME (sandbox)\n{outcome}")
