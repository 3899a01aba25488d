"""Teacher annotation of code quality (paper §2.1, notebook 01).

The paper had GPT-4 annotate ~100k files with the instruction to "determine its educational
value for a student whose goal is to learn basic coding concepts"; that phrase is all it
published. Our prompt (`PROMPT_VERSION`, recorded with every label) wraps it in a three-band
rubric and asks for a single digit 0-9 first, so the teacher layer's `rate` helper can read the
probability-weighted score from the first token's logprobs (or parse the digit when the
endpoint gives none), followed by a one-line reason.

Reliability: a subset is rated a second time with the rubric bands in reverse order (an
independent request, not a cache hit) and the two passes are compared; the teacher card's
labelled good/bad snippets (if the card lists them) are rated with the same prompt.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..config import AnnotationConfig, ProfileConfig
from ..rundir import RunDir, read_jsonl, read_result, write_json_atomic
from .substance import informative_window, no_substance

STEP = "annotation"
PROMPT_VERSION = "v2"
"""v2: the teacher sees the file's most informative window (`substance.informative_window`), not its
first characters, and stub files are dropped before rating. Bump when the wording below changes (and `AnnotationConfig.prompt_version` with it): labels of
different versions are not comparable."""

SYSTEM_PROMPT = "You are an experienced Python teacher who judges source code as learning material for beginners."
PAPER_PHRASE = "determine its educational value for a student whose goal is to learn basic coding concepts"
RUBRIC = [
    "7-9: self-contained, clear code that teaches basic concepts (functions, loops, conditionals, data "
    "structures, algorithms) with meaningful names and comments or docstrings.",
    "4-6: useful code with some instructive parts, but long, dependent on a larger project, or thinly explained.",
    "0-3: configuration, boilerplate, auto-generated code, long lists of constants or attribute assignments, "
    "or code that only makes sense inside a larger project.",
]


def build_prompt(code: str, max_chars: int, variant: str = "main") -> tuple[str, str, dict[str, Any]]:
    """(system, user, info) for one snippet; `variant="repeat"` reverses the rubric bands (second pass).

    A file longer than `max_chars` is shown as its most informative window; `info` records the
    character range `[window_start, window_end)` that was rated."""
    win = informative_window(code, max_chars)
    shown = code[win.start:win.end].rstrip("\n")
    bands = RUBRIC if variant == "main" else list(reversed(RUBRIC))
    # The excerpt note goes after the code so every prompt shares the long instruction prefix
    # (the local server then reuses its KV cache for it).
    cut_note = (f"(An excerpt: characters {win.start}-{win.end} of the file's {len(code)} are shown.)\n"
                if not win.whole else "")
    user = (
        f"Here is a Python code snippet. Please {PAPER_PHRASE}.\n\n"
        "Rate it on a scale from 0 (no educational value) to 9 (excellent teaching material):\n"
        + "\n".join(f"- {b}" for b in bands)
        + f"\n\n```python\n{shown}\n```\n{cut_note}\n"
        "Answer with a single digit from 0 to 9 first, then one short sentence explaining why."
    )
    info = {"n_chars": len(code), "shown_chars": len(shown), "truncated": not win.whole,
            "window_start": win.start, "window_end": win.end,
            "prompt_version": PROMPT_VERSION + ("" if variant == "main" else "-rubric-reversed")}
    return SYSTEM_PROMPT, user, info


# --------------------------------------------------------------------------- sampling
def size_bucket(n_chars: int) -> str:
    """Coarse size stratum (characters)."""
    for lim, name in ((1000, "<1k"), (4000, "1k-4k"), (16000, "4k-16k")):
        if n_chars < lim:
            return name
    return ">=16k"


def stratified_sample(sources: Sequence[str], n_chars: Sequence[int], n: int, seed: int = 0) -> list[int]:
    """Indices of a sample stratified by (source, size bucket), proportional allocation with at
    least one per non-empty stratum (largest remainder); deterministic for a seed."""
    strata: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (s, c) in enumerate(zip(sources, n_chars)):
        strata[(s, size_bucket(int(c)))].append(i)
    total = len(sources)
    n = min(n, total)
    keys = sorted(strata)
    if n <= 0 or not keys:
        return []
    quota = {k: n * len(strata[k]) / total for k in keys}
    alloc = {k: min(len(strata[k]), max(1, int(quota[k]))) for k in keys}
    # Trim or top up to exactly n by the largest fractional remainders.
    order = sorted(keys, key=lambda k: quota[k] - int(quota[k]), reverse=True)
    while sum(alloc.values()) > n:
        k = max((k for k in keys if alloc[k] > 1), key=lambda k: alloc[k] - quota[k], default=None)
        if k is None:
            break
        alloc[k] -= 1
    i = 0
    while sum(alloc.values()) < n and i < 10 * len(order) + n:
        k = order[i % len(order)]
        if alloc[k] < len(strata[k]):
            alloc[k] += 1
        i += 1
    rng = random.Random(seed)
    picked: list[int] = []
    for k in keys:
        picked.extend(rng.sample(strata[k], alloc[k]))
    return sorted(rng.sample(picked, n)) if len(picked) > n else sorted(picked)


# --------------------------------------------------------------------------- agreement
def _rank(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(a)


def agreement_stats(a: Sequence[float], b: Sequence[float], threshold: float | None = None) -> dict[str, Any]:
    """Agreement of two score lists: Pearson, Spearman, mean |diff|, share within 1 point, and
    binary agreement + Cohen's kappa at `threshold` (default: median of both)."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    out: dict[str, Any] = {"n": int(len(x))}
    if len(x) < 2:
        return out
    thr = float(np.median(np.concatenate([x, y]))) if threshold is None else threshold
    bx, by = x >= thr, y >= thr
    po = float((bx == by).mean())
    pe = float(bx.mean() * by.mean() + (1 - bx.mean()) * (1 - by.mean()))
    const = np.std(x) == 0 or np.std(y) == 0
    out.update({
        "pearson": None if const else float(np.corrcoef(x, y)[0, 1]),
        "spearman": None if const else float(np.corrcoef(_rank(x), _rank(y))[0, 1]),
        "mean_abs_diff": float(np.abs(x - y).mean()),
        "within_1": float((np.abs(x - y) <= 1.0).mean()),
        "binary_threshold": thr, "binary_agreement": po,
        "cohen_kappa": None if pe >= 1.0 else float((po - pe) / (1 - pe)),
    })
    return out


def auc_good_bad(good: Sequence[float], bad: Sequence[float]) -> float | None:
    """P(score of a good snippet > score of a bad one), ties count half (= ROC AUC)."""
    if not good or not bad:
        return None
    wins = sum((g > b) + 0.5 * (g == b) for g in good for b in bad)
    return float(wins / (len(good) * len(bad)))


def card_snippets(rd: RunDir, limit: int | None = None) -> list[dict[str, Any]]:
    """Labelled good/bad snippets from `teacher/card.json` (entries with code and a good/bad label), if any;
    the first `limit` (the card lists them interleaved good/bad, so a prefix stays balanced)."""
    path = rd.path / "teacher" / "card.json"
    if not path.exists():
        return []
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    found: list[dict[str, Any]] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            code = obj.get("code") or obj.get("text") or obj.get("snippet")
            label = obj.get("label") or obj.get("expected") or obj.get("kind")
            if isinstance(code, str) and isinstance(label, str) and label.lower() in ("good", "bad"):
                found.append({"name": obj.get("name") or obj.get("id") or f"snippet{len(found)}",
                              "label": label.lower(), "code": code})
                return
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    walk(card)
    return found[:limit] if limit is not None else found


# --------------------------------------------------------------------------- the stage
@dataclass
class AnnotationResult:
    """Labels and reliability numbers of one annotation run."""

    labels: list[dict[str, Any]]
    teacher: str
    summary: dict[str, Any] = field(default_factory=dict)


def _rating_row(base: dict[str, Any], rating: Any, teacher: str, info: dict[str, Any], pass_name: str) -> dict[str, Any]:
    score = getattr(rating, "score", None)
    if score is not None and (not isinstance(score, (int, float)) or math.isnan(float(score))):
        score = None
    return {**base, **info, "pass": pass_name, "score": None if score is None else float(score),
            "method": getattr(rating, "method", "failed"), "reason": getattr(rating, "reason", None),
            "raw": (getattr(rating, "raw", "") or "")[:300], "teacher": teacher}


def annotate(corpus: Any, acfg: AnnotationConfig, teacher: Any, seed: int = 0,
             snippets: Sequence[dict[str, Any]] = ()) -> AnnotationResult:
    """Rate a stratified sample of `corpus` (a `datasets.Dataset` or list of dicts with text/source/n_chars)."""
    if acfg.prompt_version != PROMPT_VERSION:
        raise ValueError(f"annotation.prompt_version={acfg.prompt_version!r}: this code implements prompt "
                         f"{PROMPT_VERSION!r} only (older prompts are kept in version control)")
    rows = corpus if isinstance(corpus, list) else None
    sources = [r["source"] for r in rows] if rows else corpus["source"]
    n_chars = [r["n_chars"] for r in rows] if rows else corpus["n_chars"]
    texts = [r["text"] for r in rows] if rows else corpus["text"]
    paths = [r.get("path") for r in rows] if rows else corpus["path"]
    reasons = [no_substance(p, t) for p, t in zip(paths, texts)]
    eligible = [i for i, why in enumerate(reasons) if why is None]
    picks = stratified_sample([sources[i] for i in eligible], [n_chars[i] for i in eligible], acfg.n_samples, seed)
    ids = [eligible[j] for j in picks]
    picked = [rows[i] for i in ids] if rows else corpus.select(ids).to_list()
    rep_ids = set(random.Random(seed + 1).sample(ids, min(acfg.reliability_subset, len(ids))))

    jobs: list[tuple[str, str]] = []
    meta: list[tuple[dict[str, Any], dict[str, Any], str]] = []
    for i, r in zip(ids, picked):
        base = {"id": int(i), "path": r.get("path"), "source": r.get("source"), "distribution": r.get("distribution"),
                "licence": r.get("licence"), "stratum": f"{r.get('source')}|{size_bucket(int(r['n_chars']))}"}
        for variant in ("main", "repeat") if i in rep_ids else ("main",):
            system, user, info = build_prompt(r["text"], acfg.max_prompt_chars, variant)
            jobs.append((system, user))
            meta.append((base, info, variant))
    for s in snippets:
        system, user, info = build_prompt(s["code"], acfg.max_prompt_chars, "main")
        jobs.append((system, user))
        meta.append(({"id": -1, "path": f"card:{s['name']}", "source": "teacher-card", "label": s["label"]}, info, "card"))

    ratings = teacher.rate_many(jobs, desc="rating educational value", max_tokens=acfg.reason_tokens)
    label = str(getattr(teacher, "label", "unknown teacher"))
    out = [_rating_row(b, r, label, info, p) for (b, info, p), r in zip(meta, ratings)]
    summary = summarize(out)
    summary["substance_rule"] = {"n_corpus": len(reasons), "n_eligible": len(eligible),
                                 "dropped": dict(Counter(why for why in reasons if why is not None))}
    return AnnotationResult(out, label, summary)


def summarize(labels: list[dict[str, Any]]) -> dict[str, Any]:
    """Score distribution, rating methods, two-pass agreement and teacher-card agreement."""
    main = [r for r in labels if r["pass"] == "main"]
    scores = [r["score"] for r in main if r["score"] is not None]
    rep = {r["id"]: r["score"] for r in labels if r["pass"] == "repeat" and r["score"] is not None}
    pairs = [(r["score"], rep[r["id"]]) for r in main if r["id"] in rep and r["score"] is not None]
    card = [r for r in labels if r["pass"] == "card" and r["score"] is not None]
    good = [r["score"] for r in card if r.get("label") == "good"]
    bad = [r["score"] for r in card if r.get("label") == "bad"]
    return {
        "n_rated": len(main), "n_scored": len(scores), "n_failed": len(main) - len(scores),
        "methods": dict(Counter(r["method"] for r in main)),
        "n_truncated": sum(bool(r.get("truncated")) for r in main),
        "score_mean": float(np.mean(scores)) if scores else None,
        "score_std": float(np.std(scores)) if scores else None,
        "score_median": float(np.median(scores)) if scores else None,
        "n_distinct_scores": len(set(round(s, 3) for s in scores)),
        "two_pass": agreement_stats([a for a, _ in pairs], [b for _, b in pairs]),
        "card": {"n_good": len(good), "n_bad": len(bad), "auc_good_vs_bad": auc_good_bad(good, bad),
                 "mean_good": float(np.mean(good)) if good else None, "mean_bad": float(np.mean(bad)) if bad else None},
    }


@dataclass
class AnnotationStageResult:
    """The `annotation` step's `summary.json`, typed (what `run_annotation` returns)."""

    n_rated: int
    """Main-pass files sent to the teacher."""
    n_scored: int
    """Of those, files that got a score."""
    n_failed: int
    """Of those, files whose rating failed (no score)."""
    methods: dict[str, int]
    """Rating method (as the teacher's `rate` reports it; `failed` for none) -> main-pass files."""
    n_truncated: int
    """Main-pass files longer than the prompt budget, shown as their most informative window."""
    score_mean: float | None
    """Mean main-pass score (None without scores)."""
    score_std: float | None
    """Standard deviation of the main-pass scores."""
    score_median: float | None
    """Median main-pass score."""
    n_distinct_scores: int
    """Distinct main-pass scores (rounded to 3 decimals)."""
    two_pass: dict[str, Any]
    """Agreement of the main and the repeat (reversed-rubric) pass (`agreement_stats`)."""
    card: dict[str, Any]
    """Scores of the teacher card's labelled good/bad snippets: n_good, n_bad, auc_good_vs_bad, mean_good, mean_bad."""
    substance_rule: dict[str, Any]
    """Files dropped before rating: n_corpus, n_eligible, dropped (reason -> files)."""
    teacher: str
    """Label of the teacher that rated."""
    prompt_version: str
    """`PROMPT_VERSION` of the prompt used."""
    seconds: float
    """Wall time of the step."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AnnotationStageResult":
        """From `summary.json`'s dict (its keys are the fields)."""
        return cls(**d)


def run_annotation(cfg: ProfileConfig, rd: RunDir, force: bool = False, teacher: Any = None) -> AnnotationStageResult:
    """Stage `annotation`: rate a stratified corpus sample -> `annotation/labels.jsonl` + `summary.json`.

    Uses `teacher` if given, else `Teacher.from_config(cfg.teacher, rd)` (closed afterwards). Ratings
    go through the teacher cache, so a killed run resumes where it stopped. Returns the summary, typed.
    """
    from ..corpus import load_corpus

    cfg = rd.view(STEP, cfg)
    with rd.step(STEP, force, config=cfg.annotation) as rec:
        if rec is None:
            return read_result(AnnotationStageResult, rd.path / STEP / "summary.json")
        t0 = time.time()
        corpus = load_corpus(rd)
        own = teacher is None
        if own:
            from ..teacher import Teacher

            teacher = Teacher.from_config(cfg.teacher, rd)
        try:
            res = annotate(corpus, cfg.annotation, teacher, cfg.seed, card_snippets(rd, cfg.annotation.card_snippets))
        finally:
            if own:
                teacher.close()
        with open(rec.path / "labels.jsonl", "w", encoding="utf-8") as f:
            for row in res.labels:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        result = AnnotationStageResult(**res.summary, teacher=res.teacher, prompt_version=PROMPT_VERSION,
                                       seconds=round(time.time() - t0, 1))
        write_json_atomic(rec.path / "summary.json", result)
        rec.counts = {"n_rated": result.n_rated, "n_scored": result.n_scored, "n_failed": result.n_failed,
                      "n_truncated": result.n_truncated}
        rec.extra = {"teacher": res.teacher, "prompt_version": PROMPT_VERSION}
    return result


def load_labels_jsonl(rd: RunDir) -> list[dict[str, Any]]:
    """All rows of `annotation/labels.jsonl` (main, repeat and card passes)."""
    return read_jsonl(rd.require(STEP) / "labels.jsonl")


def rated_examples(rd: RunDir, k: int = 3) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The `k` highest and `k` lowest rated main-pass samples, with their corpus text."""
    from ..corpus import load_corpus

    main = sorted((r for r in load_labels_jsonl(rd) if r["pass"] == "main" and r["score"] is not None),
                  key=lambda r: r["score"])
    corpus = load_corpus(rd)
    pick = lambda rows: [{**r, "text": corpus[int(r["id"])]["text"]} for r in rows]  # noqa: E731
    return pick(main[::-1][:k]), pick(main[:k])


def is_rating_teacher(label: str) -> bool:
    """False for teachers known to give no usable rating signal (SmolLM2-135M: mechanics only)."""
    return "smollm2" not in label.lower()


def conclusions(summary: AnnotationStageResult, teacher_ok: bool = True) -> list[str]:
    """Sentences on this run's labels, generated from the summary's numbers."""
    from ..stats import wilson_interval

    out = []
    sub = summary.substance_rule or {}
    if sub:
        dropped = sub.get("dropped") or {}
        n_drop = sum(dropped.values())
        lo, hi = wilson_interval(n_drop, sub["n_corpus"]) if sub.get("n_corpus") else (0.0, 0.0)
        out.append(f"{n_drop} of {sub.get('n_corpus')} corpus files ({n_drop / max(1, sub.get('n_corpus', 1)):.1%}, "
                   f"95% CI {lo:.1%}-{hi:.1%}) have no substance and were never rated: "
                   + (", ".join(f"{k} {v}" for k, v in sorted(dropped.items())) or "none") + ".")
    n, trunc = summary.n_rated, summary.n_truncated
    out.append(f"{n} files rated; {trunc} were longer than the prompt budget and shown as their most informative "
               f"window, {n - trunc} whole.")
    two = summary.two_pass or {}
    if two.get("spearman") is not None:
        out.append(f"Two independent passes agree with Spearman {two['spearman']:.2f} over n = {two['n']} files "
                   f"(kappa {two['cohen_kappa'] if two.get('cohen_kappa') is None else round(two['cohen_kappa'], 2)}).")
    elif two.get("n"):
        out.append(f"The two passes over n = {two['n']} files give constant scores: no agreement can be measured.")
    card = summary.card or {}
    if card.get("auc_good_vs_bad") is not None:
        k = card["n_good"] + card["n_bad"]
        out.append(f"On the teacher card's {k} labelled snippets a good one outscores a bad one with probability "
                   f"{card['auc_good_vs_bad']:.2f}" + (" (n too small for an interval)." if k < 10 else "."))
    if not teacher_ok:
        out.append("The teacher cannot judge code (smoke profile): these labels test the mechanics only.")
    return out


def rated_window_examples(rd: RunDir, k: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    """`k` seeded main-pass labels of files longer than the prompt budget, with the text they were rated on."""
    from ..corpus import load_corpus

    cut = [r for r in load_labels_jsonl(rd) if r["pass"] == "main" and r.get("truncated") and r["score"] is not None
           and r.get("window_end") is not None]
    pick = random.Random(seed).sample(cut, min(k, len(cut)))
    corpus = load_corpus(rd)
    return [{**r, "shown": corpus[int(r["id"])]["text"][r["window_start"]:r["window_end"]]} for r in pick]
