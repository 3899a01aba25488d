"""Synthetic textbooks and exercises: draws, parsing, execution checks, dedup, decontamination,
and generation through a scripted teacher (the prompts sent, the replies judged)."""

from __future__ import annotations

import json

import pytest

from phi_utils.config import SHARED_DATA, get_profile
from phi_utils.steps import open_run
from phi_utils.synth import parsing
from phi_utils.synth.topics import (draw_exercise, draw_function_name, draw_textbook, function_name_vocab,
                                    sample_seed, topic_taxonomy, vocab_sizes)


# --------------------------------------------------------------------------- draws
def test_draws_reproducible_from_seed_and_vary_across_seeds():
    from phi_utils.synth.textbooks import textbook_messages

    a, b = draw_textbook(sample_seed(0, "textbook", 3)), draw_textbook(sample_seed(0, "textbook", 3))
    assert a == b and textbook_messages(a) == textbook_messages(b)
    draws = [draw_textbook(sample_seed(0, "textbook", i)) for i in range(40)]
    assert len({d.topic for d in draws}) > 20 and len({d.audience for d in draws}) > 5
    assert all(len(d.words) == 3 and d.topic in {t for _, t in topic_taxonomy()} for d in draws)
    assert sample_seed(0, "textbook", 1) != sample_seed(1, "textbook", 1) != sample_seed(0, "exercise", 1)
    fixed = draw_textbook(5, randomised=False)
    assert fixed.topic is None and fixed.words == ()
    assert vocab_sizes()["topics"] >= 200


def test_function_names_come_from_the_vocabulary():
    fn = function_name_vocab()
    for i in range(50):
        name = draw_function_name(sample_seed(0, "exercise", i))
        parts = name.split("_")
        assert parts[0] in fn["verbs"] and name.isidentifier()
    assert draw_exercise(7) == draw_exercise(7)
    assert draw_exercise(7).function_name != draw_exercise(8).function_name or draw_exercise(7).topic != draw_exercise(8).topic


def test_stored_prompt_regenerates_from_seed():
    from phi_utils.synth.textbooks import regenerate_prompt, textbook_messages

    d = draw_textbook(123456)
    row = {"seed": 123456, "randomised": True, "prompt": textbook_messages(d)[-1]["content"]}
    assert regenerate_prompt(row, 3) == row["prompt"]


# --------------------------------------------------------------------------- parsing
def test_split_passage_finds_blocks_claims_and_truncation():
    text = ("Intro\n\n```python\nx = [1, 2]\nprint(sum(x))  # Output: 3\n```\n\nThis prints `3`.\n\n"
            "Output:\n```\n3\n```\n\n```bash\nls\n```\n\n```python\n>>> 2 * 3\n6\n```\n\n```python\ndef f(:\n")
    blocks, other = parsing.split_passage(text)
    assert [b.closed for b in blocks] == [True, True, False]
    assert blocks[0].claims == ["3", "3", "3"]
    assert blocks[1].claims == ["6"] and "print(repr(" in blocks[1].code
    assert "bash" in other


def test_claim_agreement_is_lenient_but_catches_contradictions():
    assert parsing.claim_agrees("6", "6\n")
    assert parsing.claim_agrees("'hello'", "hello\n")
    assert parsing.claim_agrees("3.14", "3.14159\n")
    assert parsing.claim_agrees("The total is 6", "The total is 6\n")
    assert not parsing.claim_agrees("7", "6\n")
    assert not parsing.claim_agrees("[1, 2, 3]", "[1, 2, 4]\n")


MALFORMED = {
    "fenced": "Here you go:\n```python\ndef add(a: int, b: int) -> int:\n    \"\"\"Add two numbers.\"\"\"\n    return a + b\n\nassert add(1, 2) == 3\nassert add(0, 0) == 0\n```\nHope it helps!",
    "json": json.dumps({"prompt": "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n", "solution": "    return a + b\n",
                        "tests": ["assert add(1, 2) == 3"]}),
    "truncated": "```python\ndef add(a, b):\n    \"\"\"Add.\"\"\"\n    return a + b\n\nassert add(1, 2) == 3\nassert add(2, 2) ==",
    "split_blocks": "```python\ndef add(a, b):\n    \"\"\"Add.\"\"\"\n    return a + b\n```\nTests:\n```python\nassert add(1, 2) == 3\n```",
    "check_function": "```python\ndef add(a, b):\n    \"\"\"Add.\"\"\"\n    return a + b\n\ndef check_add():\n    assert add(1, 2) == 3\n\ncheck_add()\n```",
    "main_guard": "```python\ndef add(a, b):\n    \"\"\"Add.\"\"\"\n    return a + b\n\nif __name__ == \"__main__\":\n    assert add(1, 2) == 3\n```",
    "bare": "def add(a, b):\n    \"\"\"Add.\"\"\"\n    return a + b\n\nassert add(1, 1) == 2\n",
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_parse_exercise_repairs_common_malformations(kind):
    ex, why = parsing.parse_exercise(MALFORMED[kind], "add")
    assert why == "ok" and ex is not None
    assert ex.entry_point == "add" and '"""' in ex.prompt and "return a + b" in ex.solution
    assert ex.tests and all(t.startswith(("assert add(", "def check_add", "check_add()")) for t in ex.tests)
    from phi_utils.synth.exercises import exercise_program, validate_programs

    assert validate_programs([exercise_program(ex.prompt, ex.solution, ex.tests)], 5.0)[0][0] == "kept"
    assert validate_programs([exercise_program(ex.prompt, "    return a - b\n", ex.tests)], 5.0)[0][0] == "failed_tests"


@pytest.mark.parametrize("text,reason", [
    ("I cannot do that.", "syntax_error"),
    (None, "no_code"),
    ("```python\nx = 1\n```", "no_function"),
    ("```python\ndef f(x):\n    return x\n\nassert f(1) == 1\n```", "no_docstring"),
    ("```python\ndef f(x):\n    \"\"\"Identity.\"\"\"\n    return x\n```", "no_tests"),
    ("```python\ndef f(x):\n    \"\"\"Identity.\"\"\"\n    pass\n\nassert f(1) == 1\n```", "empty_solution"),
])
def test_parse_exercise_reports_why_it_failed(text, reason):
    ex, why = parsing.parse_exercise(text, "f")
    assert ex is None and why == reason


# --------------------------------------------------------------------------- validation by execution (real sandbox)
def test_passages_are_validated_by_execution():
    from phi_utils.synth.textbooks import validate_passages

    good = "Sum:\n\n```python\nxs = [1, 2, 3]\nprint(sum(xs))  # Output: 6\n```\n\nThis prints `6`."
    wrong_claim = "Sum:\n\n```python\nxs = [1, 2, 3]\nprint(sum(xs))\n```\n\nThe output is:\n```\n7\n```"
    fails = "```python\nprint(1 / 0)\n```"
    builds_on_earlier = "```python\ndef sq(x):\n    return x * x\n```\nThen:\n```python\nprint(sq(4))  # Output: 16\n```"
    no_code = "Only prose about loops."
    bad_syntax = "```python\nfor i in range(3) print(i)\n```"
    cut = "```python\nprint('ok')\n```\nNext:\n```python\nwhile True:\n    x ="
    verdicts = validate_passages([good, wrong_claim, fails, builds_on_earlier, no_code, bad_syntax, cut])
    assert [v.status for v in verdicts] == ["kept", "wrong_output", "code_failed", "kept", "no_code",
                                            "syntax_error", "kept"]
    assert verdicts[1].n_claims_wrong == 1 and "7" in verdicts[1].detail
    assert verdicts[6].truncated_block and "while True" not in verdicts[6].text


def test_exercise_programs_run_against_their_tests():
    from phi_utils.synth.exercises import exercise_program, validate_programs

    prompt = 'def double(x: int) -> int:\n    """Twice x."""\n'
    ok = exercise_program(prompt, "    return 2 * x\n", ["assert double(2) == 4"])
    wrong = exercise_program(prompt, "    return x + 2\n", ["assert double(3) == 6"])
    slow = exercise_program(prompt, "    while True:\n        pass\n", ["assert double(1) == 2"])
    res = validate_programs([ok, wrong, slow], timeout_s=2.0)
    assert [s for s, _ in res] == ["kept", "failed_tests", "timeout"]


# --------------------------------------------------------------------------- diversity, dedup, decontamination
def test_funnel_counts_what_survives_each_check_in_order():
    from phi_utils.synth.common import funnel
    from phi_utils.synth.exercises import FILTERS as EXERCISE_FILTERS
    from phi_utils.synth.textbooks import FILTERS as TEXTBOOK_FILTERS

    rows = [{"status": s} for s in ("kept", "teacher_error", "no_code", "syntax_error", "timeout", "wrong_output",
                                    "near_duplicate", "kept")]
    assert funnel(rows, TEXTBOOK_FILTERS) == {"generated": 8, "reply": 7, "valid_code": 5, "code_runs": 4,
                                              "outputs_consistent": 3, "not_near_duplicate": 2}
    rows = [{"status": s} for s in ("parse_failed", "failed_tests", "contaminated", "kept")]
    assert funnel(rows, EXERCISE_FILTERS) == {"generated": 4, "reply": 4, "parsed": 3, "passes_tests": 2,
                                              "not_contaminated": 1, "not_near_duplicate": 1}


def test_distinct_n_and_near_duplicates():
    from phi_utils.synth.diversity import distinct_n, near_duplicate_mask

    assert distinct_n(["a b c", "a b c"], 1) == 0.5 and distinct_n(["a b", "c d"], 1) == 1.0
    base = ("Binary search halves the search interval each step. We compare the middle element with the "
            "target and discard the half that cannot contain it, which gives logarithmic time.")
    texts = [base, base.replace("each step", "at every step"), "Bubble sort repeatedly swaps adjacent "
             "elements that are out of order until the list is sorted; it is quadratic.", base]
    assert near_duplicate_mask(texts, threshold=0.6) == [False, True, False, True]


def test_embedding_measures_rank_redundant_sets_lower():
    from phi_utils.synth.diversity import diversity_report

    same = ["Sorting a list of numbers with bubble sort in Python."] * 2 + ["Bubble sort sorts a list of numbers in Python."]
    varied = ["Sorting a list of numbers with bubble sort in Python.", "Computing compound interest for a bank account.",
              "Breadth-first search over a graph of friends."]
    a, b = diversity_report(same), diversity_report(varied)
    assert a["nn_similarity"] > b["nn_similarity"] and a["embedding_spread"] < b["embedding_spread"]
    assert a["near_dup_rate"] > 0 and b["near_dup_rate"] == 0
    assert b["topics_covered"] >= 2
    # A large set is measured on a seeded sample of max_texts (the pairwise measures are n^2).
    big = varied * 4
    r = diversity_report(big, max_texts=5)
    assert r["n"] == 12 and r["n_measured"] == 5 and r == diversity_report(big, max_texts=5)
    assert r["near_dup_rate"] > 0   # the sample holds repeats of the three texts


def test_decontamination_flags_crafted_cases():
    from phi_utils.synth.decontaminate import benchmark_texts, check_contamination

    refs = benchmark_texts()
    he = next(r for r in refs if r.benchmark == "humaneval" and r.task_id == "HumanEval/0")
    copied = "Helper for my app. " + he.text  # shares the whole HumanEval/0 docstring
    paraphrase = "Return True if any two numbers in the list are closer to each other than the given threshold."
    clean = "Simulate an elevator that moves between floors and log each stop with a timestamp."
    flags = check_contamination([copied, paraphrase, clean], n=13, sim_threshold=0.75)
    assert flags[0].flagged and "humaneval/HumanEval/0" in flags[0].ngram_matches
    assert flags[1].flagged and not flags[1].ngram_matches and flags[1].nearest == "humaneval/HumanEval/0"
    assert not flags[2].flagged
    if (SHARED_DATA / "mbpp" / "mbpp.jsonl").exists():
        mb = next(r for r in refs if r.benchmark == "mbpp")
        f = check_contamination([f"Exercise: {mb.text} Use a loop."], n=13, use_embeddings=False)[0]
        assert f.flagged and f"mbpp/{mb.task_id}" in f.ngram_matches  # short MBPP text matched whole


def test_open_exercises_map_to_schema():
    src = SHARED_DATA / "synthetic" / "jina-code-exercises-sample"
    if not src.exists():
        pytest.skip(f"{src} absent")
    from phi_utils.synth.exercises import _open_rows

    rows = _open_rows("synthetic/jina-code-exercises-sample", 20)
    ok = [r for r in rows if r["status"] == "pending"]
    assert len(rows) == 20 and len(ok) >= 12
    assert all(parsing.parses(r["prompt"] + r["solution"]) and r["entry_point"] in r["prompt"] for r in ok)


def test_open_source_errors_name_the_source(tmp_path):
    from phi_utils.synth.opendata import OpenDataError, exercise_rows

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "def f():\\n", "solution": "  pass"}\n{oops\n')
    with pytest.raises(OpenDataError, match="bad.jsonl:2"):
        exercise_rows(str(bad))
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('[{"problem": "def f():\\n    \\"\\"\\"caf\xe9\\"\\"\\"\\n", "solution": "    return 1"}]'.encode("latin-1"))
    with pytest.raises(OpenDataError, match="latin1.json: not UTF-8"):
        exercise_rows(str(latin1))
    from phi_utils.synth.opendata import missing_local

    assert missing_local(str(tmp_path / "nope.jsonl")) and not missing_local("jinaai/code_exercises")


# --------------------------------------------------------------------------- scripted teacher
# The i-th draw (known by its seed) gets: a passage whose stated output is right (0) or wrong (1); an
# exercise whose solution passes its tests (0), fails them (1), or a reply without code (2).
PASSAGES = ["Adding up {topic}:\n\n```python\nprint(sum([1, 2, 3]))  # Output: 6\n```\n\nThis prints `6`.",
            "Counting {topic}:\n\n```python\nprint(len('abc'))\n```\n\nThe output is:\n```\n4\n```"]
EXERCISE = ('```python\ndef {f}(xs: list) -> int:\n    """Return the sum of the numbers in xs."""\n    return {body}\n\n'
            "assert {f}([1, 2]) == 3\nassert {f}([]) == 0\nassert {f}([5]) == 5\n```")


def _index(seed: int, kind: str) -> int:
    return next(i for i in range(10) if sample_seed(0, kind, i) == seed)


def _synth_teacher(req):
    import re

    name = re.search(r"must be named `(\w+)`", req.user)
    if name:
        i = _index(req.body["seed"], "exercise")
        return "I cannot do that." if i == 2 else EXERCISE.format(f=name.group(1), body=("sum(xs)", "len(xs)")[i])
    kind = "textbook-fixed" if "to a student." in req.user else "textbook"
    topic = re.search(r"\*\*(.+?)\*\*", req.user)
    return PASSAGES[_index(req.body["seed"], kind)].format(topic=topic.group(1) if topic else "the fixed topic")


def test_generation_sends_the_drawn_prompts_and_validates_the_replies(stub_teacher, tmp_path):
    from phi_utils.synth.exercises import exercise_messages, generate_exercises, parse_rows
    from phi_utils.synth.textbooks import generate_passages, textbook_messages, validate_passages

    stub_teacher.script = _synth_teacher
    teacher = stub_teacher.teacher(open_run(get_profile("smoke"), tmp_path / "run"))
    rows = generate_passages(teacher, 2, base_seed=0, n_words=2, max_tokens=64)
    draws = [draw_textbook(sample_seed(0, "textbook", i), 2) for i in range(2)]
    assert [r["seed"] for r in rows] == [d.seed for d in draws]
    assert all(r["teacher"] == stub_teacher.label for r in rows)
    assert [r["prompt"] for r in rows] == [textbook_messages(d)[-1]["content"] for d in draws]
    sent = sorted(stub_teacher.requests, key=lambda q: q.body["seed"])
    assert [q.messages for q in sent] == [textbook_messages(d) for d in sorted(draws, key=lambda d: d.seed)]
    assert all(q.body["max_tokens"] == 64 and q.body["temperature"] == 0.7 for q in sent)
    assert rows[0]["text"] == PASSAGES[0].format(topic=draws[0].topic) and rows[0]["finish_reason"] == "stop"
    again = generate_passages(teacher, 2, base_seed=0, n_words=2, max_tokens=64)
    assert [r["text"] for r in again] == [r["text"] for r in rows] and all(r["cached"] for r in again)
    assert len(stub_teacher.requests) == 2
    verdicts = validate_passages([r["text"] for r in rows])
    assert [v.status for v in verdicts] == ["kept", "wrong_output"] and verdicts[1].n_claims_wrong == 1

    ex = generate_exercises(teacher, 3, base_seed=0, max_tokens=96)
    ex_draws = [draw_exercise(sample_seed(0, "exercise", i)) for i in range(3)]
    assert sorted(q.user for q in stub_teacher.requests[2:]) == sorted(
        exercise_messages(d)[-1]["content"] for d in ex_draws)
    parse_rows(ex)
    assert [(r["status"], r["detail"]) for r in ex] == [("pending", ""), ("pending", ""),
                                                       ("parse_failed", "syntax_error")]
    assert [r["entry_point"] for r in ex[:2]] == [d.function_name for d in ex_draws[:2]]
    assert all(len(r["tests"]) == 3 and "Return the sum" in r["prompt"] for r in ex[:2])
    from phi_utils.synth.exercises import exercise_program, validate_programs

    res = validate_programs([exercise_program(r["prompt"], r["solution"], r["tests"]) for r in ex[:2]], 5.0)
    assert [st for st, _ in res] == ["kept", "failed_tests"]


def test_stages_end_to_end_smoke(stub_teacher, tmp_path):
    """Both stages in the smoke profile on a scripted teacher (attached via its URL), then skip on rerun."""
    from datasets import load_from_disk

    from phi_utils.synth import run_exercises, run_textbooks

    stub_teacher.script = _synth_teacher
    cfg = get_profile("smoke")
    cfg.textbooks.n_passages, cfg.textbooks.ablation_passages, cfg.textbooks.max_tokens = 2, 2, 64
    cfg.textbooks.topup_max = 3
    cfg.exercises.n_exercises, cfg.exercises.max_tokens, cfg.exercises.topup_max = 3, 96, 10
    rd = open_run(cfg, tmp_path / "run")
    m = run_textbooks(cfg, rd)
    assert m.teacher == stub_teacher.label
    assert (m.funnel_generated["generated"], m.funnel_generated["outputs_consistent"]) == (2, 1)
    assert m.ablation["n_each"] == 2 and (m.funnel_ablation["generated"], m.funnel_ablation["outputs_consistent"]) == (2, 1)
    ct = load_from_disk(str(rd.path / "textbooks" / "code_textbook"))
    assert set(ct["source"]) <= {"textbook", "filtered_code"} and m.code_textbook["filtered_code_missing"]
    tb = load_from_disk(str(rd.path / "textbooks" / "textbooks"))
    assert {"text", "topic", "audience", "style", "words", "seed", "teacher"} <= set(tb.column_names)
    generated = [r for r in tb.to_list() if r["origin"] == "generated"]
    assert [r["seed"] for r in generated] == [sample_seed(0, "textbook", 0)] and "Output: 6" in generated[0]["text"]
    e = run_exercises(cfg, rd)
    assert e.teacher == stub_teacher.label
    ds = load_from_disk(str(rd.path / "exercises" / "code_exercises"))
    assert {"task_id", "prompt", "solution", "tests", "entry_point", "text", "teacher"} <= set(ds.column_names)
    assert {k: e.funnel_generated[k] for k in ("generated", "parsed", "passes_tests")} == {
        "generated": 3, "parsed": 2, "passes_tests": 1}
    assert e.contamination["checked"] >= 1
    assert draw_exercise(sample_seed(0, "exercise", 0)).function_name in ds["entry_point"]
    n_sent = len(stub_teacher.requests)
    assert n_sent == 2 + 2 + 3 and run_textbooks(cfg, rd) == m  # complete step is skipped
    assert len(stub_teacher.requests) == n_sent
