"""The paper's artefacts the notebooks show, rendered from the code that runs."""

from __future__ import annotations

from types import SimpleNamespace

from phi_utils.config import get_profile


def test_block_forward_is_the_running_source():
    from phi_utils.model import model
    from phi_utils.model.show import method_source

    src = method_source(model.Block)
    assert src.startswith("def forward(") and "self.attn(h" in src and "self.mlp(h)" in src


def test_contamination_criteria_name_each_setting_and_the_rule():
    from phi_utils.contamination.show import criteria_text

    cc = get_profile("tiny").contamination
    text = criteria_text(cc)
    assert f"ngram = {cc.ngram!r}: Word n-gram length" in text and f"taus = {cc.taus!r}" in text
    assert "def close_pairs(" in text


def test_exercise_and_textbook_cards_rebuild_the_prompt_from_the_seed():
    from phi_utils.synth.show import exercise_card, first_generated, textbook_card
    from phi_utils.synth.topics import draw_exercise

    name = draw_exercise(7).function_name
    row = {"seed": 7, "origin": "generated", "status": "failed_tests", "detail": "AssertionError",
           "prompt": f"def {name}(x):\n", "solution": "    return x\n", "tests": [f"assert {name}(1) == 2"]}
    card = exercise_card(row)
    assert f"The function must be named `{name}`" in card and "failed_tests: AssertionError" in card
    assert first_generated([{"origin": "open"}, row]) is row
    tb = textbook_card({"seed": 3, "randomised": True, "status": "kept", "text": "A passage."}, 2)
    assert "--- PROMPT (rebuilt from seed 3)" in tb and tb.endswith("A passage.")


def test_rated_example_and_decision_rule():
    from phi_utils.filtering.show import decision_rule, median_rated, rated_example

    labels = [{"id": i, "pass": "main", "score": s, "path": f"f{i}.py", "raw": "5 because", "method": "logprobs",
               "reason": "because", "teacher": "t"} for i, s in enumerate([1.0, 5.0, 8.0])]
    ex = median_rated(labels)
    assert ex["score"] == 5.0
    text = rated_example(ex, "def f():\n    return 1\n", 2000)
    assert "educational value" in text and "def f():" in text and "score 5.00 of 9 (method: logprobs)" in text
    res = SimpleNamespace(report=SimpleNamespace(label_threshold=4.5), substance_rule={"dropped": {"empty": 2}},
                          classifier="RandomForest(100)", embedder="minilm", score_threshold=0.61, n_kept=40, n_corpus=100)
    rule = decision_rule(res, 0.5)
    assert "teacher score >= 4.500" in rule and "P(positive) >= 0.6100, the top 50%" in rule and "def keep_threshold(" in rule
