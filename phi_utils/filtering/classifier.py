"""The quality classifier and the filtered corpus (paper §2.1, notebook 02).

A random forest on file embeddings predicts the teacher's annotation. The annotation score
(0-9, probability-weighted) becomes a binary label with a threshold: `FilterConfig.label_threshold`,
or by default the **median** annotation score ("more educational than the typical sampled file"),
because the paper does not publish its scale or threshold and a fixed cut-off would give one
class for teachers that rate everything high or low. Files scored `>=` the threshold are positive.

The classifier is evaluated on a held-out split (ROC AUC, precision/recall at the probability
threshold actually used for filtering, calibration curve) and against a control trained on
shuffled labels; stratified cross-validated AUCs of both are reported too because the tiny
profiles have only ~100 labels. The whole corpus is then scored and the top `keep_fraction`
kept -> `filtering/filtered` (corpus columns + `score`).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import FilterConfig, ProfileConfig
from ..rundir import RunDir, read_result, save_dataset, write_json_atomic

STEP = "filtering"


class FilteringError(RuntimeError):
    """The filter cannot be trained or applied (e.g. no usable labels); the message says why."""


@dataclass
class ClassifierReport:
    """Held-out evaluation of the quality classifier and its shuffled-label control."""

    label_threshold: float
    n_labels: int
    n_positive: int
    n_train: int
    n_test: int
    auc: float | None
    """Held-out ROC AUC."""
    auc_control: float | None
    """Held-out ROC AUC of the same forest trained on shuffled labels (≈0.5 if the pipeline is sound)."""
    cv_auc: float | None = None
    """Mean 5-fold stratified cross-validated AUC (all labels)."""
    cv_auc_control: float | None = None
    """The same for shuffled labels."""
    auc_ci: list[float] | None = None
    """Bootstrap 95% interval of `auc` (over the held-out files)."""
    auc_control_ci: list[float] | None = None
    cv_auc_ci: list[float] | None = None
    """Bootstrap 95% interval of `cv_auc` (over all labelled files, out-of-fold predictions)."""
    cv_auc_control_ci: list[float] | None = None
    prob_threshold: float | None = None
    """Classifier probability at which files are kept (set by `keep_fraction` on the corpus)."""
    precision: float | None = None
    """Held-out precision of "kept" vs the teacher's positive label at `prob_threshold`."""
    recall: float | None = None
    roc: dict[str, list[float]] = field(default_factory=dict)
    roc_control: dict[str, list[float]] = field(default_factory=dict)
    calibration: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""


def binary_labels(scores: np.ndarray, threshold: float | None = None) -> tuple[np.ndarray, float]:
    """`y = score >= threshold`; threshold None = the median score (see module docstring)."""
    thr = float(np.median(scores)) if threshold is None else float(threshold)
    y = (scores >= thr).astype(int)
    if threshold is None and 0 < y.sum() < len(y) and (y.mean() > 0.8):
        # Many ties at the median: cut strictly above it instead, when that is more balanced.
        y2 = (scores > thr).astype(int)
        if 0 < y2.sum() < len(y2) and abs(y2.mean() - 0.5) < abs(y.mean() - 0.5):
            return y2, float(np.nextafter(thr, np.inf))
    return y, thr


def make_forest(fcfg: FilterConfig, seed: int):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=fcfg.n_estimators, class_weight="balanced", min_samples_leaf=2,
                                  random_state=seed, n_jobs=max(1, fcfg.num_proc))


def _auc_with_ci(y: np.ndarray, p: np.ndarray, seed: int) -> tuple[float, list[float]]:
    from ..stats import bootstrap_auc

    est = bootstrap_auc(y.tolist(), p.tolist(), seed=seed)
    return est.mean, [est.lo, est.hi]


def _cv_auc(X: np.ndarray, y: np.ndarray, fcfg: FilterConfig, seed: int) -> tuple[float | None, list[float] | None]:
    """Stratified k-fold (k <= 5) AUC of the out-of-fold predictions, with its bootstrap interval."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    k = int(min(5, np.bincount(y).min()))
    if k < 2:
        return None, None
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    p = cross_val_predict(make_forest(fcfg, seed), X, y, cv=cv, method="predict_proba")[:, 1]
    return _auc_with_ci(y, p, seed)


def train_classifier(X: np.ndarray, scores: np.ndarray, fcfg: FilterConfig, seed: int = 0):
    """Fit the forest on all labels (after evaluating it on a held-out split); returns (model, report, y)."""
    from sklearn.metrics import roc_curve
    from sklearn.model_selection import train_test_split

    y, thr = binary_labels(scores, fcfg.label_threshold)
    n_pos = int(y.sum())
    report = ClassifierReport(label_threshold=thr, n_labels=len(y), n_positive=n_pos, n_train=0, n_test=0,
                              auc=None, auc_control=None)
    if n_pos == 0 or n_pos == len(y) or min(n_pos, len(y) - n_pos) < 2:
        raise FilteringError(f"the {len(y)} annotation scores give {n_pos} positive labels at threshold {thr:.3f}: "
                             f"the teacher's labels do not separate files, so no classifier can be trained")
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=fcfg.test_fraction, random_state=seed, stratify=y)
    rng = np.random.default_rng(seed)
    model = make_forest(fcfg, seed).fit(Xtr, ytr)
    control = make_forest(fcfg, seed).fit(Xtr, rng.permutation(ytr))
    p, pc = model.predict_proba(Xte)[:, 1], control.predict_proba(Xte)[:, 1]
    report.n_train, report.n_test = len(ytr), len(yte)
    if len(set(yte)) == 2:
        report.auc, report.auc_ci = _auc_with_ci(yte, p, seed)
        report.auc_control, report.auc_control_ci = _auc_with_ci(yte, pc, seed)
        fpr, tpr, _ = roc_curve(yte, p)
        report.roc = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
        fpr, tpr, _ = roc_curve(yte, pc)
        report.roc_control = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    report.cv_auc, report.cv_auc_ci = _cv_auc(X, y, fcfg, seed)
    report.cv_auc_control, report.cv_auc_control_ci = _cv_auc(X, rng.permutation(y), fcfg, seed)
    from sklearn.calibration import calibration_curve

    frac_pos, mean_pred = calibration_curve(yte, p, n_bins=5, strategy="quantile")
    report.calibration = {"mean_predicted": mean_pred.tolist(), "fraction_positive": frac_pos.tolist()}
    report._test = (yte, p)  # type: ignore[attr-defined]  # kept for precision/recall once the threshold is known
    final = make_forest(fcfg, seed).fit(X, y)
    return final, report, y


def keep_threshold(probs: np.ndarray, keep_fraction: float) -> float:
    """Probability cut-off that keeps the top `keep_fraction` of `probs` (ties kept)."""
    if keep_fraction >= 1.0:
        return float(probs.min())
    return float(np.quantile(probs, 1.0 - keep_fraction, method="higher"))


def precision_recall_at(y: np.ndarray, p: np.ndarray, thr: float) -> tuple[float | None, float | None]:
    pred = p >= thr
    tp = int((pred & (y == 1)).sum())
    precision = tp / int(pred.sum()) if pred.sum() else None
    recall = tp / int((y == 1).sum()) if (y == 1).sum() else None
    return precision, recall


def load_labels(rd: RunDir) -> list[dict[str, Any]]:
    """Main-pass labels with a score, from `annotation/labels.jsonl`."""
    path = rd.require("annotation") / "labels.jsonl"
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise FilteringError(f"{path}:{i}: malformed JSON line ({e})") from e
        if row.get("pass", "main") == "main" and row.get("score") is not None:
            rows.append(row)
    return rows


@dataclass
class FilteringResult:
    """The `filtering` step's `metrics.json`, typed (what `run_filtering` returns)."""

    embedder: str
    """Embedding model the forest was trained on."""
    teacher: str | None
    """Teacher whose annotation labels were used (from the annotation manifest)."""
    prompt_version: str | None
    """Annotation prompt version of those labels."""
    n_corpus: int
    """Files in the corpus."""
    n_kept: int
    """Files kept in `filtering/filtered`."""
    kept_fraction: float
    """`n_kept / n_corpus`."""
    tokens_corpus_est: int
    """Estimated tokens in the corpus."""
    tokens_kept_est: int
    """Estimated tokens in the kept files."""
    score_threshold: float
    """Classifier probability at which files are kept (inf when no file has substance)."""
    classifier: str | None
    """The classifier (`RandomForest(<n>)`), or None when the labels could train none."""
    embedding_s: float
    """Seconds spent embedding the labelled files for training (including the cache)."""
    scoring_s: float
    """Seconds of the scoring pipeline: every corpus file embedded and scored (0 when resumed finished)."""
    world_size: int
    """Tasks of the scoring pipeline (`data.tasks`)."""
    report: ClassifierReport
    """Held-out evaluation of the classifier and its shuffled-label control."""
    note: str
    """Why no classifier was trained (empty when one was)."""
    substance_rule: dict[str, Any]
    """Files never kept for lack of substance: n_eligible, dropped (reason -> files)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FilteringResult":
        """From `metrics.json`'s dict (its keys are the fields; `report` is `asdict(ClassifierReport)`)."""
        return cls(**{**d, "report": ClassifierReport(**d["report"])})


def run_filtering(cfg: ProfileConfig, rd: RunDir, force: bool = False) -> FilteringResult:
    """Stage `filtering`: train + evaluate the forest on the labelled files' embeddings, then score
    the whole corpus with the scoring pipeline (`scoring.score_corpus`, datatrove, `data.tasks`
    tasks) and keep the top `keep_fraction` of the files with substance.

    Writes `filtering/filtered` (kept corpus rows + `score`), `filtering/scores.jsonl` (every
    corpus row's score), `filtering/metrics.json`, `filtering/classifier.joblib` and the pipeline's
    shards and markers in `filtering/pipeline/`. Returns the metrics, typed.
    """
    import shutil

    import joblib

    from ..corpus import DATASET_NAME, load_corpus
    from .embed import MAX_EMBED_CHARS, cached_embeddings
    from .scoring import WINDOW_RULE, score_corpus, substance_windows
    from .substance import no_substance

    cfg = rd.view(STEP, cfg)
    fcfg = cfg.filter
    with rd.step(STEP, force, config=fcfg) as rec:
        if rec is None:
            return read_result(FilteringResult, rd.path / STEP / "metrics.json")
        t0 = time.time()
        corpus = load_corpus(rd)
        labels = load_labels(rd)
        ann = rd.manifest("annotation")
        ids = np.array([r["id"] for r in labels], dtype=int)
        scores = np.array([r["score"] for r in labels], dtype=float)
        labelled = corpus.select(ids.tolist())
        keys = labelled["sha256"] if "sha256" in corpus.column_names else [str(i) for i in ids]
        texts, _ = substance_windows(labelled["path"], labelled["text"], MAX_EMBED_CHARS)
        # The key names the window rule, so embeddings of first characters are never reused.
        emb = cached_embeddings(texts, [f"{k}:{WINDOW_RULE}" for k in keys], fcfg, rd, force=force, name="labelled")
        t_emb = time.time() - t0
        if force:
            shutil.rmtree(rec.path / "pipeline", ignore_errors=True)
        note = ""
        try:
            model, report, _ = train_classifier(emb, scores, fcfg, cfg.seed)
            joblib.dump(model, rec.path / "classifier.joblib")
            scored = score_corpus(cfg, rd.require("corpus") / DATASET_NAME, rd.path, rec.path / "classifier.joblib",
                                  rec.path / "pipeline" / f"tasks{cfg.data.tasks}", MAX_EMBED_CHARS, len(corpus))
            probs, reasons, t_score = scored.probs, scored.reasons, scored.seconds
        except FilteringError as e:
            # Constant labels (e.g. the smoke teacher) carry no signal: keep a seeded random sample so the
            # pipeline still runs, and say so everywhere the result is shown.
            note = f"{e}; kept a seeded random {fcfg.keep_fraction:.0%} of the corpus instead"
            y_all, thr_lab = binary_labels(scores, fcfg.label_threshold) if len(scores) else (np.zeros(0, int), 0.0)
            model, report = None, ClassifierReport(thr_lab, len(scores), int(y_all.sum()), 0, 0, None, None, note=note)
            probs = np.random.default_rng(cfg.seed).random(len(corpus))
            reasons = [no_substance(r["path"], r["text"]) for r in corpus.select_columns(["path", "text"])]
            t_score = 0.0
        eligible = np.array([why is None for why in reasons], dtype=bool)
        # Files without substance are never kept; `keep_fraction` applies to the others.
        thr = keep_threshold(probs[eligible], fcfg.keep_fraction) if eligible.any() else float("inf")
        if model is not None:
            yte, pte = report._test  # type: ignore[attr-defined]
            report.precision, report.recall = precision_recall_at(yte, pte, thr)
            del report._test  # type: ignore[attr-defined]
        report.prob_threshold = thr
        keep = np.flatnonzero((probs >= thr) & eligible)
        filtered = corpus.select(keep).add_column("score", probs[keep].astype(float).tolist())
        n_tok = np.asarray(corpus["n_tokens"], dtype=np.int64)
        result = FilteringResult(
            embedder=fcfg.embedder, teacher=ann.get("teacher"), prompt_version=ann.get("prompt_version"),
            n_corpus=len(corpus), n_kept=int(len(keep)), kept_fraction=len(keep) / max(1, len(corpus)),
            tokens_corpus_est=int(n_tok.sum()), tokens_kept_est=int(n_tok[keep].sum()),
            score_threshold=thr, classifier=None if model is None else f"RandomForest({fcfg.n_estimators})",
            embedding_s=round(t_emb, 2), scoring_s=round(t_score, 3), world_size=cfg.data.tasks,
            report=report, note=note,
            substance_rule={"n_eligible": int(eligible.sum()),
                            "dropped": dict(Counter(why for why in reasons if why is not None))})
        save_dataset(filtered, rec.path / "filtered")
        with open(rec.path / "scores.jsonl", "w", encoding="utf-8") as f:
            for i, pth in enumerate(corpus["path"]):
                f.write(json.dumps({"id": i, "path": pth, "score": float(probs[i]),
                                    "kept": bool(probs[i] >= thr and eligible[i]), "no_substance": reasons[i]}) + "\n")
        write_json_atomic(rec.path / "metrics.json", result)
        rec.counts = {"n_corpus": result.n_corpus, "n_kept": result.n_kept,
                      "tokens_kept_est": result.tokens_kept_est, "n_labels": report.n_labels}
        rec.extra = {"teacher": ann.get("teacher"), "embedder": fcfg.embedder,
                     "pipeline": {"engine": "datatrove", "executor": cfg.data.executor, "tasks": cfg.data.tasks}}
    return result


def load_filtered(rd: RunDir) -> "datasets.Dataset":  # noqa: F821
    """The filtered corpus (`filtering/filtered`) - the "filtered code" half of CodeTextbook."""
    import datasets

    return datasets.load_from_disk(str(rd.require(STEP) / "filtered"))


def filter_examples(rd: RunDir, k: int = 3) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The `k` corpus files the filter scored highest and lowest, with text and score."""
    from ..corpus import load_corpus

    rows = [json.loads(line) for line in (rd.require(STEP) / "scores.jsonl").read_text().splitlines() if line.strip()]
    rows.sort(key=lambda r: r["score"])
    corpus = load_corpus(rd)
    pick = lambda rs: [{**r, "text": corpus[int(r["id"])]["text"]} for r in rs]  # noqa: E731
    return pick(rows[::-1][:k]), pick(rows[:k])


def corpus_scores(rd: RunDir) -> np.ndarray:
    """Every corpus file's filter score, in corpus order."""
    rows = [json.loads(line) for line in (rd.require(STEP) / "scores.jsonl").read_text().splitlines() if line.strip()]
    return np.array([r["score"] for r in sorted(rows, key=lambda r: r["id"])])


def conclusions(metrics: FilteringResult) -> list[str]:
    """Sentences on the classifier and the filter, generated from the metrics' numbers."""
    rep = metrics.report
    out = []
    if metrics.note:
        out.append(f"No classifier: {metrics.note}.")

    def span(point: float | None, ci: list[float] | None) -> str:
        return "n/a" if point is None else f"{point:.2f}" + ("" if not ci else f" (95% CI {ci[0]:.2f}-{ci[1]:.2f})")

    for name, key, n in (("5-fold CV", "cv_auc", rep.n_labels), ("held-out", "auc", rep.n_test)):
        pt, ci = getattr(rep, key), getattr(rep, f"{key}_ci")
        c_pt, c_ci = getattr(rep, f"{key}_control"), getattr(rep, f"{key}_control_ci")
        if pt is None:
            continue
        if ci and c_ci and ci[0] > c_ci[1]:
            verdict = "above the control: resolved at 95%"
        elif ci and ci[0] > 0.5:
            verdict = "above chance at 95% but overlapping the control"
        else:
            verdict = "not resolved from chance or the control at 95%"
        out.append(f"{name} ROC AUC {span(pt, ci)} vs shuffled-label control {span(c_pt, c_ci)} over n = {n} files: {verdict}.")
    sub = metrics.substance_rule or {}
    out.append(f"The filter kept {metrics.n_kept} of {metrics.n_corpus} files ({metrics.kept_fraction:.1%}; "
               f"{metrics.tokens_kept_est:,} of {metrics.tokens_corpus_est:,} tokens)"
               + (f", never one of the {sum(sub.get('dropped', {}).values())} files without substance." if sub else "."))
    return out
