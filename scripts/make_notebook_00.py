import nbformat as nbf
nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
params = code('profile = "tiny"\nrun_dir = None\nseed = 0\nforce = False')
params.metadata["tags"] = ["parameters"]
nb.cells = [
md("""# 00 · Overview: *Textbooks Are All You Need* in one page

**phi-1** (Gunasekar et al., 2023) is a 1.3B-parameter code model trained on only ~7B unique tokens that
reaches 50.6% pass@1 on HumanEval (paper-reported). The claim: *data quality* - "textbook quality"
code - beats scale. The recipe, which the numbered notebooks reproduce step by step:

| step | paper | notebook |
|---|---|---|
| A teacher LLM (GPT-4) labels ~100k code files for *educational value* | §2.1 | 01 |
| A random forest on code-model embeddings filters The Stack + StackOverflow to ~6B tokens | §2.1 | 02 |
| GPT-3.5 writes <1B tokens of Python *textbooks* (diverse topics and audiences) | §2.2 | 03 |
| GPT-3.5 writes ~180M tokens of *CodeExercises* (docstring -> function) | §2.2 | 04 |
| A decoder-only transformer: parallel attention+MLP, partial rotary, FlashAttention | §2.3 | 05 |
| Pretraining on CodeTextbook (filtered code + textbooks) -> phi-1-base | §2.3 | 06 |
| Finetuning on CodeExercises -> phi-1 | §2.3 | 07 |
| HumanEval / MBPP pass@1 (Table 1, Figure 2.1) | §2, Table 1 | 08 |
| Qualitative prompts beyond the exercises (PyGame, Tkinter, pyplot) | §3 | 09 |
| 50 unconventional problems graded by GPT-4 (Table 2) | §4 | 10 |
| Contamination: n-gram, embedding and AST similarity; pruning and retraining (Table 3) | §5 | 11 |

Every number below is either **measured by this run** or labelled **paper-reported**."""),
params,
code("""from phi_utils.config import get_profile
from phi_utils.steps import open_stage
from phi_utils import overview
from phi_utils.plan import make_plan

cfg, rd = open_stage(profile, run_dir, seed)"""),
md("## The paper's headline numbers (paper-reported)"),
code("overview.paper_headlines()"),
md("## Environment check\nWhat this machine offers: accelerator, sandbox (bubblewrap), virtual display, offline data."),
code("""env = overview.write_environment(rd)
{k: v for k, v in env.items() if k != "versions"}"""),
code("env[\"versions\"]"),
md("""## The profile and its plan
Profiles differ only in sizes and endpoints, never in code path: `smoke` (CI), `tiny` (the main job on
2 CPU cores) and `paper` (the paper's hyperparameters on 8×A100). The plan below is computed from the
config; `python -m phi_utils run --profile paper --dry-run` prints the paper's."""),
code("print(make_plan(cfg))"),
code("print(make_plan(get_profile(\"paper\")))"),
code("overview.config_table(cfg)"),
md("""## The teacher
Every synthetic label, textbook, exercise and grade in this run comes from the teacher below (GPT-4 and
GPT-3.5 in the paper). Its card records the model file and hash, and a small capability check - a few
HumanEval problems and the rating AUC on labelled good/bad snippets - so every result can be read
against its teacher. A weak teacher (e.g. SmolLM2-135M in `smoke`) only exercises the mechanics."""),
code("""from phi_utils.teacher import write_teacher_card

card = write_teacher_card(cfg, rd, quick=cfg.name == "smoke")
{k: v for k, v in card.items() if k not in ("snippets", "capability")}"""),
code("""import pandas as pd

cap = card["capability"]
print(f"teacher: {card['label']}")
print(f"HumanEval (first {cap['humaneval']['n']} problems, greedy): {cap['humaneval']['passed']}/{cap['humaneval']['n']} passed")
print(f"rating AUC on {cap['rating']['n']} labelled good/bad snippets: {cap['rating']['auc']} "
      f"(methods: {cap['rating']['methods']}; 0.5 = no signal)")
pd.DataFrame(cap["rating"]["ratings"])[["name", "label", "score", "method"]]"""),
code("""rd.set_key_metric("00_overview", "teacher rating AUC", cap["rating"]["auc"])"""),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "notebooks/00_overview.ipynb")
