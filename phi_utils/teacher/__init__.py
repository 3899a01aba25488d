"""Teacher LLM layer (issue 3): the paper's GPT-4 / GPT-3.5 roles through the `openai` client.

    t = Teacher.from_config(cfg.teacher, rd)   # local: attaches to $PHI_TEACHER_BASE_URL or starts a server
    r = t.chat(messages, ...)                  # -> ChatResult (cached, retried, rate limited)
    rt = t.rate(system, user)                  # -> Rating (logprob-weighted score, or parsed, or failed)
    t.label                                    # which teacher produced a result: record it

See `client.py` (Teacher), `transport.py` (the paced, retried wire), `ledger.py` (cost, budget,
errors), `rating.py` (logprob ratings), `server.py` / `engine.py` (the local llama.cpp server),
`models.py` (GGUF fetch + hash), `batch.py` (OpenAI's Batch API), `card.py` (the teacher card).
"""

from .cache import ResponseCache, cache_key
from .client import Teacher
from .ledger import BUDGET_ERROR, TeacherConfigError, TeacherError, TeacherUnreachableError
from .models import MODELS, ModelFetchError, ModelHashError, cli_fetch, fetch_model, resolve_model
from .parsing import Rating, extract_code_block, parse_json_object
from .engine import pipeline_server
from .server import LocalServer, TeacherServerError
from .transport import ChatResult, RateLimiter

__all__ = [
    "BUDGET_ERROR", "ChatResult", "LocalServer", "MODELS", "ModelFetchError", "ModelHashError", "RateLimiter",
    "Rating", "ResponseCache", "Teacher", "TeacherConfigError", "TeacherError", "TeacherServerError",
    "TeacherUnreachableError", "cache_key", "cli_fetch", "extract_code_block", "fetch_model", "parse_json_object",
    "pipeline_server", "resolve_model", "write_teacher_card",
]


def write_teacher_card(cfg, rd, quick: bool = False):  # noqa: ANN001 - thin lazy wrapper (card imports more)
    """See `phi_utils.teacher.card.write_teacher_card`."""
    from .card import write_teacher_card as _w

    return _w(cfg, rd, quick)
