"""`python -m phi_utils publish --run-dir runs/tiny`: a finished run made readable in the repository.

A run never edits tracked files; publishing is a separate, explicit step. From a run directory that
is complete, current and made from a clean git tree it writes:

    figures/                      the run's figures and MANIFEST.json (run, commit, hashes)
    README.md                     the headline block (Figure 2.1, its table, one generated sentence)
                                  and the notebooks table linking the published notebooks
    docs/results.md               the full results block (stages, Tables 1-3, verdicts)
    docs/notebooks/NN_name.ipynb  the executed notebooks: outputs as in the run, progress bars
                                  collapsed, no absolute paths of this machine, images embedded
    docs/notebooks/NN_name.html   the same rendered by nbconvert (offline)

Anything else is refused with one line naming why: a step or notebook not finished (incomplete), a
step whose fingerprint no longer matches the profile or its upstream steps, or a notebook whose source
changed since it ran (stale), or a step made from uncommitted code (dirty tree).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .config import REPO_ROOT, SHARED_DATA, get_profile
from .pipeline import NOTEBOOKS_DIR, STAGES, Stage, plan_steps, stage_marker
from .report import END, START, results_markdown
from .rundir import MARKER, RunDir, read_json, read_result, write_json_atomic
from .steps import GraphOf, step_graph

NOTEBOOKS_START, NOTEBOOKS_END = "<!-- notebooks:start -->", "<!-- notebooks:end -->"
PUBLISHED_DIR = Path("docs") / "notebooks"
RESULTS_DOC = Path("docs") / "results.md"
HEADLINE_FIGURE = "08_figure_2_1.png"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
INCOMPLETE = ("not done yet", "interrupted before it finished", "its notebook has not finished")


class PublishError(RuntimeError):
    """The run cannot be published; the message says why in one line."""


@dataclass
class Published:
    """What `publish` wrote, relative to the repository root it wrote into."""

    notebooks: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ refusals
def step_commits(rd: RunDir, stages: Sequence[Stage]) -> dict[str, str | None]:
    """Step -> the git commit its manifest records (`<sha>-dirty` when made from uncommitted code);
    the run's own run.json entry stands in when the stages have no steps."""
    chosen = {st.id for st in stages}
    out = {name: read_json(rd.path / name / MARKER).get("git_sha")
           for name, spec in rd.graph.items()
           if spec.stage in chosen and (rd.path / name / MARKER).exists()}
    return out or {"run.json": read_json(rd.path / "run.json").get("git_sha")}


def _code_sources(nb: dict[str, Any]) -> list[str]:
    """The code cells a notebook runs, minus the parameters papermill injects."""
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"] if c["cell_type"] == "code"
            and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


def notebook_problem(source: Path, executed: Path) -> str | None:
    """Why the executed copy cannot be published (missing, failed, or run from other source), or None."""
    if not executed.exists():
        return "incomplete: no executed copy"
    ran = json.loads(executed.read_text(encoding="utf-8"))
    errors = [o.get("ename", "error") for c in ran["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        return f"incomplete: its executed copy holds an error ({errors[0]})"
    if source.exists() and _code_sources(ran) != _code_sources(json.loads(source.read_text(encoding="utf-8"))):
        return f"stale: {source.name} changed since it ran (re-run the stage with --force)"
    return None


def check_publishable(run_dir: Path, stages: Sequence[Stage] = STAGES, notebooks_dir: Path = NOTEBOOKS_DIR,
                      graph: GraphOf = step_graph) -> RunDir:
    """The run directory, opened against its profile's current definition, or PublishError naming the
    first reason it cannot be published (incomplete, stale, dirty)."""
    if not (run_dir / "run.json").exists():
        raise PublishError(f"{run_dir} is not a run directory (no run.json); run `python -m phi_utils run` first")
    profile = read_json(run_dir / "run.json").get("profile")
    cfg = get_profile(profile)  # fingerprints against the profile as defined now
    rd = RunDir(run_dir, profile, cfg, graph(cfg))
    plan = plan_steps(rd, stages, forced=False)
    why_all = {**plan.redo, **plan.stale_unselected,
               **{nb: why for nb, why in plan.stage_reasons.items() if why != ["its steps are redone"]}}
    reasons = [f"{name}: {'; '.join(why)}" for name, why in why_all.items()]
    if reasons:
        unfinished = any(w in INCOMPLETE or w.endswith("is not done") for why in why_all.values() for w in why)
        kind = "incomplete" if unfinished else "stale"
        more = f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""
        raise PublishError(f"{run_dir} is {kind}: {', '.join(reasons[:3])}{more}; finish it with "
                           f"`python -m phi_utils run --profile {profile} --run-dir {run_dir}`")
    for st in stages:
        problem = notebook_problem(notebooks_dir / f"{st.notebook}.ipynb", rd.path / "notebooks" / f"{st.notebook}.ipynb")
        if problem:
            raise PublishError(f"{run_dir} is {problem.split(':', 1)[0]}: {st.notebook}:{problem.split(':', 1)[1]}")
    commits = step_commits(rd, stages)
    dirty = sorted(s for s, sha in commits.items() if not sha or sha.endswith("-dirty"))
    if dirty:
        sha = commits[dirty[0]] or "no commit recorded"
        raise PublishError(f"{run_dir} was made from a dirty git tree ({', '.join(dirty[:3])}"
                           f"{' and more' if len(dirty) > 3 else ''}: {sha}); commit the code and redo those steps")
    return rd


# ------------------------------------------------------------------------------ notebooks
def relative_to_root(path: Path, root: Path = REPO_ROOT, fallback: str = "<run_dir>") -> str:
    """`path` relative to the repository root (`runs/tiny`), or `fallback` for a path outside it."""
    try:
        return str(path.resolve().relative_to(root.resolve())) or "."
    except ValueError:
        return fallback


def path_replacements(run_dir: Path, root: Path = REPO_ROOT) -> list[tuple[str, str]]:
    """(absolute path of this machine, what the published text says instead), longest first."""
    rel = relative_to_root(run_dir, root)
    pairs = {str(run_dir.resolve()): rel, str(run_dir.absolute()): rel,
             str(root.resolve()): ".", str(REPO_ROOT): ".",
             str(SHARED_DATA.resolve()): "<shared-data>", str(Path(sys.base_prefix)): "<python>",
             str(Path(tempfile.gettempdir()).resolve()): "<tmp>", str(Path.home()): "~"}
    system = ("", "/", "/usr", "/usr/local", "/opt")  # too general to stand for one machine's install
    return sorted(((k, v) for k, v in pairs.items() if k not in system), key=lambda kv: -len(kv[0]))


def scrub(text: str, replacements: Sequence[tuple[str, str]]) -> str:
    """`text` with every absolute path of `replacements` replaced (`/x/run/a` -> `runs/tiny/a`)."""
    for old, new in replacements:
        text = text.replace(old + "/", "" if new == "." else new + "/").replace(old, new)
    return text


_BAR = re.compile(r"^(?P<desc>.*?)\s*(?:\d{1,3}%\||\d+(?:\.\d+)?[kMG]?it \[)")


def collapse_progress(text: str) -> str:
    """A stream's text with progress bars collapsed: each carriage-return redraw to its last state,
    consecutive lines of the same bar (same description) to the last one."""
    lines = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    out: list[str] = []
    last_bar: str | None = None
    for line in lines:
        m = _BAR.match(line)
        bar = m.group("desc") if m else None
        if bar is not None and bar == last_bar and out:
            out[-1] = line
        else:
            out.append(line)
        last_bar = bar
    return "\n".join(out)


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else value


def clean_outputs(outputs: list[dict[str, Any]], replacements: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Adjacent streams merged and their progress bars collapsed, widget views dropped (their text
    stays), absolute paths replaced in every text output; images are kept as embedded."""
    merged: list[dict[str, Any]] = []
    for o in outputs:
        o = copy.deepcopy(o)
        if o["output_type"] == "stream" and merged and merged[-1]["output_type"] == "stream" \
                and merged[-1]["name"] == o["name"]:
            merged[-1]["text"] = _text(merged[-1]["text"]) + _text(o["text"])
            continue
        merged.append(o)
    for o in merged:
        if o["output_type"] == "stream":
            o["text"] = scrub(collapse_progress(_text(o["text"])), replacements)
        elif o["output_type"] in ("display_data", "execute_result"):
            o["data"].pop(WIDGET_MIME, None)
            for mime, value in o["data"].items():
                if mime.startswith("text/") or mime in ("application/json",):
                    o["data"][mime] = scrub(_text(value), replacements) if isinstance(value, (str, list)) else value
        elif o["output_type"] == "error":
            o["traceback"] = [scrub(t, replacements) for t in o["traceback"]]
            o["evalue"] = scrub(o["evalue"], replacements)
    return [o for o in merged if o["output_type"] != "stream" or o["text"].strip() or o["text"] == ""]


def clean_notebook(nb: dict[str, Any], replacements: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The published form of an executed notebook (see `clean_outputs`); timing metadata dropped."""
    nb = copy.deepcopy(nb)
    for c in nb["cells"]:
        c.get("metadata", {}).pop("papermill", None)
        c.get("metadata", {}).pop("execution", None)
        c["source"] = scrub(_text(c["source"]), replacements) if c["cell_type"] == "code" else _text(c["source"])
        if c["cell_type"] == "code":
            c["outputs"] = clean_outputs(c.get("outputs", []), replacements)
    nb["metadata"].pop("widgets", None)
    pm = nb["metadata"].pop("papermill", {})
    nb["metadata"]["papermill"] = {"parameters": json.loads(scrub(json.dumps(pm.get("parameters", {})), replacements)),
                                   "duration": pm.get("duration")}
    return nb


NOTEBOOK_CSS = "notebook.css"
"""The stylesheet every published HTML notebook links (nbconvert's `lab` template styles, ~260 KB, the
same for every notebook: one file instead of one copy per page)."""
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>\s*", re.S)


def to_html(nb: dict[str, Any]) -> tuple[str, str]:
    """Static HTML of a notebook (nbconvert's `lab` template; runs offline, images inline) linking
    `NOTEBOOK_CSS`, and that stylesheet: the template's styles in the page head. Styles inside outputs
    (a table's own) stay in the page."""
    import nbformat
    from nbconvert import HTMLExporter

    node = nbformat.reads(json.dumps(nb), as_version=4)  # the reader joins multi-line strings
    body, _ = HTMLExporter(template_name="lab", embed_images=True).from_notebook_node(node)
    head, end, rest = body.partition("</head>")
    css = "\n".join(m.group(1).strip() for m in _STYLE.finditer(head)) + "\n"
    link = f'<link href="{NOTEBOOK_CSS}" rel="stylesheet" type="text/css"/>\n'
    first = _STYLE.search(head)
    head = head if first is None else head[:first.start()] + link + _STYLE.sub("", head[first.start():])
    return head + end + rest, css


def write_notebooks(out: Path, notebooks: dict[str, dict[str, Any]]) -> list[Path]:
    """`<out>/<name>.ipynb` and `.html` for each published notebook, and the one `NOTEBOOK_CSS` they link;
    other notebooks in `out` are dropped. Returns the files written, notebooks and pages in order."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    sheets = set()
    for name, nb in notebooks.items():
        ipynb, html = out / f"{name}.ipynb", out / f"{name}.html"
        ipynb.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        page, css = to_html(nb)
        html.write_text(page, encoding="utf-8")
        sheets.add(css)
        written += [ipynb, html]
    if len(sheets) > 1:
        raise PublishError(f"the notebooks' HTML templates differ ({len(sheets)} stylesheets); one {NOTEBOOK_CSS} "
                           "cannot serve them all")
    if sheets:
        (out / NOTEBOOK_CSS).write_text(sheets.pop(), encoding="utf-8")
    for p in out.iterdir():
        if p.suffix in (".ipynb", ".html") and p not in written:
            p.unlink()
    return written


def publish_notebooks(rd: RunDir, stages: Sequence[Stage], root: Path) -> tuple[list[str], list[str]]:
    """Write `docs/notebooks/<notebook>.ipynb` and `.html` for every stage (`write_notebooks`)."""
    repl = path_replacements(rd.path, root)
    written = write_notebooks(root / PUBLISHED_DIR, {
        st.notebook: clean_notebook(json.loads((rd.path / "notebooks" / f"{st.notebook}.ipynb").read_text(encoding="utf-8")), repl)
        for st in stages})
    rel = [str(p.relative_to(root)) for p in written]
    return [r for r in rel if r.endswith(".ipynb")], [r for r in rel if r.endswith(".html")]


# ------------------------------------------------------------------------------ figures
def publish_figures(rd: RunDir, root: Path) -> list[str]:
    """Make `figures/` exactly the run's figures and record where they came from in MANIFEST.json."""
    src, dst = rd.path / "figures", root / "figures"
    wanted = sorted(p.name for p in src.iterdir() if p.suffix in (".png", ".json")) if src.exists() else []
    dst.mkdir(parents=True, exist_ok=True)
    for p in dst.iterdir():
        if p.suffix in (".png", ".json") and p.name != "MANIFEST.json" and p.name not in wanted:
            p.unlink()
    for name in wanted:
        shutil.copy2(src / name, dst / name)
    info = read_json(rd.path / "run.json")
    write_json_atomic(dst / "MANIFEST.json", {
        "profile": rd.profile, "run_dir": relative_to_root(rd.path, root), "git_sha": info.get("git_sha"), "finished": finished_at(rd),
        "published": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "figures": {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in sorted(dst.glob("*.png"))}})
    return [f"figures/{n}" for n in wanted] + ["figures/MANIFEST.json"]


def finished_at(rd: RunDir) -> str | None:
    """When the run's last notebook finished (from the runner's stage markers)."""
    times = [read_json(p).get("finished") for p in (rd.path / "stages").glob("*.json")
             if not p.name.endswith(".metric.json") and p.name != "summary.json"]
    return max((t for t in times if t), default=None)


def stage_minutes(rd: RunDir, stages: Sequence[Stage]) -> float:
    """The stages' wall time: per stage, its last execution as the runner recorded it, or the time its
    steps took when they were made, whichever is longer (a notebook re-executed over finished steps
    takes seconds; the work it shows took its steps' time)."""
    total = 0.0
    for st in stages:
        marker = stage_marker(rd, st)
        notebook = (read_json(marker).get("wall_s") or 0) if marker.exists() else 0
        steps = sum(read_json(rd.path / s / MARKER).get("wall_time_s") or 0 for s in rd.graph.of_stage(st.id)
                    if (rd.path / s / MARKER).exists())
        total += max(notebook, steps)
    return total / 60


# ------------------------------------------------------------------------------ text blocks
def _fmt_ci(mean: float, ci: Sequence[float], signed: bool = False) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(mean)} [{f.format(ci[0])}, {f.format(ci[1])}]"


def headline_sentence(summary: dict[str, Any]) -> str:
    """One sentence, generated from the eval step's Figure 2.1 summary: which differences the
    miniature resolves on the canonical-solution loss, and what pass@1 can and cannot show here."""
    from .evaluation.fig21 import GREEDY, LOSS

    bench = "all" if "all" in summary.get("n_problems", {}) else "humaneval"
    diffs = [d for d in summary.get("paired_differences", []) if d["metric"] == LOSS and d["benchmark"] == bench]

    def phrase(ds: list[dict[str, Any]]) -> str:
        items = [f"{re.sub(r' [(].*[)]$', '', d['what'].split(': ', 1)[-1])} ({d['name']}, {d['mean']:+.3f})" for d in ds]
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

    lower = [d for d in diffs if d["resolved"] and d["mean"] < 0]
    higher = [d for d in diffs if d["resolved"] and d["mean"] > 0]
    open_ = [d for d in diffs if not d["resolved"]]
    parts = []
    if lower:
        parts.append(f"{phrase(lower)} {'lowers' if len(lower) == 1 else 'lower'} it, resolved at 95%")
    if higher:
        parts.append(f"{phrase(higher)} {'raises' if len(higher) == 1 else 'raise'} it, resolved at 95%, "
                     "against the paper's direction")
    if open_:
        parts.append(f"{phrase(open_)} {'is' if len(open_) == 1 else 'are'} not resolved from zero")
    greedy = [a["metrics"].get(GREEDY, {}).get("humaneval") for a in summary.get("arms", {}).values()]
    greedy = [g for g in greedy if g]
    if greedy and all(g["mean"] == 0 for g in greedy):
        n, upper = greedy[0]["n_problems"], max(100 * g["ci95"][1] for g in greedy)
        tail = (f"no model solves any of the {n} HumanEval problems (95% upper bound {upper:.1f}%), so the paper's "
                "pass@1 gains cannot be shown at this scale")
    elif greedy:
        best = max(greedy, key=lambda g: g["mean"])
        tail = (f"the best HumanEval greedy pass@1 is {100 * best['mean']:.1f}% [{100 * best['ci95'][0]:.1f}, "
                f"{100 * best['ci95'][1]:.1f}]")
    else:
        tail = "no pass@1 was measured"
    body = "; ".join(parts) if parts else "no paired difference between arms was measured"
    return f"On the loss of the benchmarks' reference solutions (nats/token), {body}; {tail}."


def headline_markdown(rd: RunDir, stages: Sequence[Stage] = STAGES) -> str:
    """The README's results block: the Figure 2.1 plot, a table of the arms (loss with its interval,
    the verdict against the previous arm) and one generated sentence; then where the rest is."""
    from .evaluation.fig21 import LOSS
    from .evaluation.scores import scores_if_run

    info = read_json(rd.path / "run.json")
    sha = (info.get("git_sha") or "unknown")[:7]
    lines = []
    if (rd.path / "figures" / HEADLINE_FIGURE).exists():
        lines += [f"![Figure 2.1 in miniature: the canonical-solution loss of each arm](figures/{HEADLINE_FIGURE})", ""]
    scores = scores_if_run(rd)
    summary = scores.fig21 if scores else None
    if summary and summary.get("arms"):
        bench = "all" if "all" in summary.get("n_problems", {}) else "humaneval"
        n = summary["n_problems"].get(bench)
        diffs: dict[str, dict[str, Any]] = {}
        for d in summary["paired_differences"]:  # each arm against the arm before it (the first listed)
            if d["metric"] == LOSS and d["benchmark"] == bench:
                diffs.setdefault(d["name"].split(" - ")[0], d)
        gaps = {g["arm"]: g for g in summary.get("baseline_gaps", [])
                if g["baseline"] == "bigram" and g["benchmark"] == bench}
        lines += [f"| arm | loss, nats/token [95% CI], {n} problems | minus its own bigram model | "
                  "verdict (paired, same problems) |", "|---|---|---|---|"]
        for letter, a in summary["arms"].items():
            e = a["metrics"].get(LOSS, {}).get(bench)
            if not e:
                continue
            d = diffs.get(letter)
            verdict = "the baseline" if d is None else (
                f"{d['name']}: {_fmt_ci(d['mean'], d['ci95'], signed=True)}, "
                + ("resolved, " + ("lower" if d["mean"] < 0 else "higher") if d["resolved"] else "not resolved"))
            g = gaps.get(letter)
            gap = "-" if g is None else (f"{_fmt_ci(g['mean'], g['ci95'], signed=True)}"
                                         + (", resolved" if g["resolved"] else ", not resolved"))
            lines.append(f"| {letter}: {a['label'].split(': ', 1)[-1]} | {_fmt_ci(e['mean'], e['ci95'])} | {gap} | "
                         f"{verdict} |")
        lines += ["", headline_sentence(summary)]
        lines += scaling_lines(rd)
    else:
        lines.append("This run has no Figure 2.1 scores (notebook 08).")
    lines += ["", f"Profile `{rd.profile}`, commit `{sha}`, started {info.get('created')}, "
              f"{stage_minutes(rd, stages):.1f} min of stage time. Every table of the run: "
              f"[docs/results.md]({RESULTS_DOC.as_posix()})."]
    return "\n".join(lines)


def scaling_lines(rd: RunDir) -> list[str]:
    """The scaling figure and one generated line per paired difference (how it moves with compute),
    when the run has the scaling step."""
    path = rd.path / "scaling" / "scaling.json"
    if not path.exists():
        return []
    from .evaluation.scaling import ScalingResult

    result = read_result(ScalingResult, path)
    out = [""]
    if (rd.path / "figures" / "08_scaling.png").exists():
        out += ["![How the differences move with compute](figures/08_scaling.png)", ""]
    budgets = ", ".join("1" if d == 1 else f"1/{d}" for d in result.budgets)
    out.append(f"At budgets {budgets} of the main one (each compute-sized by the same rule; loss in nats/token, "
               "paired over the same problems):")
    out += [f"- {line}" for line in result.trends]
    out += ["", result.not_covered]
    return out


def notebooks_table(stages: Sequence[Stage] = STAGES, root: Path = REPO_ROOT) -> str:
    """The README's notebooks table: source, paper section, what it shows, and the published
    executed copy where `docs/notebooks/` has one."""
    lines = ["| notebook | paper | what it shows | executed |", "|---|---|---|---|"]
    for st in stages:
        pub = PUBLISHED_DIR / f"{st.notebook}.ipynb"
        done = (root / pub).exists()
        executed = (f"[ipynb]({pub.as_posix()}) · [html]({pub.with_suffix('.html').as_posix()})" if done
                    else "not published yet")
        lines.append(f"| [{st.notebook}](notebooks/{st.notebook}.ipynb) | {st.section or '-'} | "
                     f"{st.summary or st.paper} | {executed} |")
    return "\n".join(lines)


def replace_block(path: Path, start: str, end: str, body: str) -> None:
    """Replace the text between `start` and `end` in `path`; one error naming the file without them."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if start not in text or end not in text:
        raise PublishError(f"{path} has no {start} ... {end} block to write into")
    block = f"{start}\n{body}\n{end}"
    path.write_text(re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S),
                    encoding="utf-8")


# ------------------------------------------------------------------------------ the command
def publish(run_dir: str | Path, root: Path = REPO_ROOT, stages: Sequence[Stage] = STAGES,
            notebooks_dir: Path = NOTEBOOKS_DIR, graph: GraphOf = step_graph) -> Published:
    """Publish a finished run into the repository at `root` (see the module docstring)."""
    rd = check_publishable(Path(run_dir), stages, notebooks_dir, graph)
    for text in (root / "README.md", root / RESULTS_DOC):  # refuse before writing anything
        body = text.read_text(encoding="utf-8") if text.exists() else ""
        if START not in body or END not in body:
            raise PublishError(f"{text} has no {START} ... {END} block to write into")
    out = Published()
    out.figures = publish_figures(rd, root)
    out.notebooks, out.html = publish_notebooks(rd, stages, root)
    repl = path_replacements(rd.path, root)
    replace_block(root / RESULTS_DOC, START, END, scrub(results_markdown(rd), repl))
    replace_block(root / "README.md", START, END, headline_markdown(rd, stages))
    if NOTEBOOKS_START in (root / "README.md").read_text(encoding="utf-8"):
        replace_block(root / "README.md", NOTEBOOKS_START, NOTEBOOKS_END, notebooks_table(stages, root))
    out.texts = ["README.md", RESULTS_DOC.as_posix()]
    return out


def cli_publish(argv: Sequence[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m phi_utils publish",
                                description="publish a finished run: figures/, the README's results, docs/notebooks/")
    p.add_argument("--run-dir", default=str(get_profile("tiny").default_run_dir()),
                   help="a finished run directory (default runs/tiny)")
    args = p.parse_args(list(argv))
    try:
        out = publish(Path(args.run_dir))
    except PublishError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"published {len(out.notebooks)} notebooks (+ HTML) to {PUBLISHED_DIR}/, {len(out.figures) - 1} figure files "
          f"to figures/, the results blocks of {' and '.join(out.texts)}")
    return 0
