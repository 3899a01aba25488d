"""The raw code corpus: the analog of the paper's "The Stack+" pool (§2, §2.1).

Two sources behind one interface (`CorpusConfig.source`):

* `local` (smoke/tiny): real Python files on this machine - the interpreter's standard library
  (PSF licence), its site-packages and any directories named in `extra_dirs`. Only files of
  permissively licensed distributions are kept; the licence is read from each distribution's
  metadata (`License-Expression`, then `Classifier: License ::`, then `License`, then its
  licence files) and recorded per file.
* `hub` (paper): The Stack (Python, deduplicated) plus a StackOverflow dump, streamed with
  `datasets`. Needs network access; says so clearly when offline.

Both go through the same cleaning: files that are huge, binary, not UTF-8, minified,
generated or (near-)empty are skipped and counted; exact duplicates (content hash) and near
duplicates (MinHash-LSH on 5-token shingles, `datasketch`) are removed and counted. Candidates
are visited in a seeded random order (`visiting_order`: a hash of seed and path, so a file's rank
does not depend on the rest of the pool) until `max_files` are kept, so the kept set is a
deterministic uniform sample of the deduplicated pool (counts refer to the files examined).

Token counts are an *estimate* (`estimate_tokens`): the number of word/punctuation pieces,
since the project's BPE tokenizer is only trained later (notebook 05).
"""

from __future__ import annotations

import hashlib
import functools
import os
import random
import re
import site
import sys
import sysconfig
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .progress import tqdm

from .config import CorpusConfig, ProfileConfig
from .datapipe.text import CODE_TOKEN_RE
from .rundir import RunDir, save_dataset, write_json_atomic, write_jsonl_atomic

STEP = "corpus"
DATASET_NAME = "dataset"
STDLIB_LICENCE = "PSF-2.0"
STDLIB_DIST = f"python-stdlib-{sys.version_info.major}.{sys.version_info.minor}"


class CorpusError(RuntimeError):
    """The corpus cannot be built as configured (e.g. hub source offline); the message says why."""


# --------------------------------------------------------------------------- licences
PERMISSIVE_SPDX = {
    "mit", "mit-0", "mit-cmu", "x11", "bsd", "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "0bsd",
    "apache", "apache-2.0", "apache-1.1", "isc", "psf", "psf-2.0", "psfl", "python-2.0", "cnri-python",
    "zlib", "cc0-1.0", "unlicense", "bsl-1.0", "hpnd", "upl-1.0", "public-domain", "ncsa", "wtfpl",
}
"""Licences treated as permissive (the kind The Stack keeps); copyleft (GPL/LGPL/AGPL/MPL/EPL) and unknown are excluded."""

# Classifier suffixes (`License :: OSI Approved :: X`) -> SPDX-like id.
_CLASSIFIER_MAP = {
    "mit license": "MIT", "mit no attribution license (mit-0)": "MIT-0", "bsd license": "BSD",
    "apache software license": "Apache-2.0", "isc license (iscl)": "ISC",
    "python software foundation license": "PSF-2.0", "zlib/libpng license": "Zlib", "the unlicense (unlicense)": "Unlicense",
    "public domain": "Public-Domain", "boost software license 1.0 (bsl-1.0)": "BSL-1.0",
    "universal permissive license (upl)": "UPL-1.0", "historical permission notice and disclaimer (hpnd)": "HPND",
    "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0", "mozilla public license 1.1 (mpl 1.1)": "MPL-1.1",
    "gnu general public license v2 (gplv2)": "GPL-2.0", "gnu general public license v3 (gplv3)": "GPL-3.0",
    "gnu general public license (gpl)": "GPL", "gnu lesser general public license v3 (lgplv3)": "LGPL-3.0",
    "gnu lesser general public license v2 (lgplv2)": "LGPL-2.0",
    "gnu library or lesser general public license (lgpl)": "LGPL", "gnu affero general public license v3": "AGPL-3.0",
    "eclipse public license 2.0 (epl-2.0)": "EPL-2.0",
}

# Free-text licence fields / licence files: first matching pattern wins (copyleft checked first,
# because e.g. "LGPL" texts mention other licences less often than BSD texts mention "GPL").
_TEXT_PATTERNS: list[tuple[str, str]] = [
    (r"\bAFFERO\b|\bAGPL", "AGPL"), (r"LESSER GENERAL PUBLIC|\bLGPL", "LGPL"),
    (r"GNU GENERAL PUBLIC|\bGPL", "GPL"), (r"MOZILLA PUBLIC|\bMPL\b", "MPL-2.0"), (r"ECLIPSE PUBLIC", "EPL"),
    (r"APACHE", "Apache-2.0"), (r"\bMIT\b|PERMISSION IS HEREBY GRANTED, FREE OF CHARGE", "MIT"),
    (r"\bBSD\b|REDISTRIBUTION AND USE IN SOURCE AND BINARY FORMS", "BSD"), (r"\bISC\b", "ISC"),
    (r"PYTHON SOFTWARE FOUNDATION|\bPSF", "PSF-2.0"), (r"UNLICENSE", "Unlicense"), (r"\bZLIB\b", "Zlib"),
    (r"PUBLIC DOMAIN|\bCC0", "Public-Domain"),
]


def _spdx_permissive(expr: str) -> bool:
    """Evaluate an SPDX expression: `A OR B` is permissive if either is, `A AND B` if both are."""
    expr = expr.replace("(", " ").replace(")", " ")
    for branch in re.split(r"\s+OR\s+", expr, flags=re.I):
        parts = [re.split(r"\s+WITH\s+", p.strip(), flags=re.I)[0].strip().lower() for p in re.split(r"\s+AND\s+", branch, flags=re.I)]
        if parts and all(p in PERMISSIVE_SPDX for p in parts if p):
            return True
    return False


def _licence_from_text(text: str) -> str | None:
    head = text[:2000].upper()
    for pattern, name in _TEXT_PATTERNS:
        if re.search(pattern, head):
            return name
    return None


@dataclass
class LicenceInfo:
    """The licence of one distribution as read from its metadata."""

    distribution: str
    version: str
    licence: str
    """SPDX-like id or expression, `unknown` when nothing could be read."""
    permissive: bool
    evidence: str
    """Which metadata field decided it (`License-Expression`, `classifier`, `License`, `licence file`, `stdlib`)."""


def classify_distribution_licence(dist: metadata.Distribution) -> LicenceInfo:
    """Read a distribution's licence from its metadata, most specific field first."""
    meta = dist.metadata
    name, version = meta.get("Name") or "unknown", meta.get("Version") or ""
    expr = (meta.get("License-Expression") or "").strip()
    if expr:
        return LicenceInfo(name, version, expr, _spdx_permissive(expr), "License-Expression")
    classifiers = [c.split("::")[-1].strip() for c in (meta.get_all("Classifier") or []) if c.startswith("License ::")]
    ids = [_CLASSIFIER_MAP.get(c.lower(), c) for c in classifiers if c.lower() not in ("osi approved", "dfsg approved")]
    if ids:
        # Several licence classifiers almost always mean dual licensing (e.g. "MIT OR Apache-2.0").
        expr = " OR ".join(dict.fromkeys(ids))
        return LicenceInfo(name, version, expr, any(_spdx_permissive(i) for i in ids), "classifier")
    field_text = (meta.get("License") or "").strip()
    if field_text and field_text.upper() not in ("UNKNOWN", "NONE"):
        first = field_text.splitlines()[0].strip()
        if len(first) <= 40 and _spdx_permissive(first.replace(" ", "-")):
            return LicenceInfo(name, version, first, True, "License")
        found = _licence_from_text(field_text)
        if found:
            return LicenceInfo(name, version, found, _spdx_permissive(found), "License")
    for f in dist.files or []:
        if re.search(r"(LICEN[CS]E|COPYING)", f.name, re.I) and ".dist-info" in str(f):
            try:
                found = _licence_from_text(Path(dist.locate_file(f)).read_text(encoding="utf-8", errors="replace"))
            except OSError:
                continue
            if found:
                return LicenceInfo(name, version, found, _spdx_permissive(found), "licence file")
    return LicenceInfo(name, version, "unknown", False, "none")


def licence_from_directory(root: Path) -> str:
    """Licence of a user-named directory: detected from a LICENSE/COPYING file at its root, else `user-supplied`."""
    for p in sorted(root.glob("*")):
        if p.is_file() and re.match(r"(LICEN[CS]E|COPYING)", p.name, re.I):
            try:
                found = _licence_from_text(p.read_text(encoding="utf-8", errors="replace"))
            except OSError:
                continue
            if found:
                return found
    return "user-supplied"


# --------------------------------------------------------------------------- file checks
_GENERATED_RE = re.compile(r"auto-?generated|@generated|generated by|file generated|generated from .*spec|do not edit|"
                           r"code generated|automatically generated", re.I)
_TOKEN_RE = CODE_TOKEN_RE


def estimate_tokens(text: str) -> int:
    """Token estimate: word and punctuation pieces (`\\w+|[^\\w\\s]`). A BPE code tokenizer gives a
    similar order of magnitude (merges split long identifiers, whitespace runs add tokens); exact
    counts come from the project tokenizer in notebook 05."""
    return len(_TOKEN_RE.findall(text))


def check_file(raw: bytes, name: str = "", max_bytes: int = 100_000, min_chars: int = 64) -> tuple[str | None, str | None]:
    """Return `(skip_reason, text)`: reason is one of huge/binary/non_utf8/empty/minified/generated, or None."""
    if len(raw) > max_bytes:
        return "huge", None
    if b"\x00" in raw:
        return "binary", None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "non_utf8", None
    if len(text.strip()) < min_chars:
        return "empty", None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if lines and (max(len(ln) for ln in lines) > 1000 or sum(map(len, lines)) / len(lines) > 200):
        return "minified", None
    head = "\n".join(text.splitlines()[:15])
    if name.endswith(("_pb2.py", "_pb2_grpc.py")) or _GENERATED_RE.search(head):
        return "generated", None
    return None, text


# --------------------------------------------------------------------------- dedup
def _shingles(text: str, k: int = 5) -> set[bytes]:
    toks = _TOKEN_RE.findall(text)
    if len(toks) <= k:
        return {" ".join(toks).encode()}
    return {" ".join(toks[i:i + k]).encode() for i in range(len(toks) - k + 1)}


class Deduplicator:
    """Exact (sha256 of the content) and near (MinHash-LSH Jaccard >= threshold) duplicate filter."""

    def __init__(self, threshold: float = 0.85, num_perm: int = 128, seed: int = 1) -> None:
        from datasketch import MinHash, MinHashLSH

        self._MinHash = MinHash
        self.num_perm, self.seed = num_perm, seed
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.hashes: set[str] = set()
        self.n = 0

    def check(self, text: str) -> str | None:
        """Return `exact_duplicate`, `near_duplicate` or None (then the text is remembered)."""
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if digest in self.hashes:
            return "exact_duplicate"
        mh = self._MinHash(num_perm=self.num_perm, seed=self.seed)
        mh.update_batch(list(_shingles(text)))
        if self.lsh.query(mh):
            return "near_duplicate"
        self.hashes.add(digest)
        self.lsh.insert(str(self.n), mh)
        self.n += 1
        return None


# --------------------------------------------------------------------------- candidates
@dataclass
class Candidate:
    """A file (or post) that may enter the corpus."""

    path: str
    """Path relative to its root (or the hub repo path)."""
    source: str
    """`stdlib`, `site-packages`, `extra`, `the-stack` or `stackoverflow`."""
    distribution: str
    licence: str
    abs_path: str | None = None
    text: str | None = None


def local_roots(extra_dirs: Iterable[str] = ()) -> list[tuple[str, Path]]:
    """(source, directory) pairs searched by the `local` source."""
    roots: list[tuple[str, Path]] = [("stdlib", Path(sysconfig.get_paths()["stdlib"]))]
    for sp in dict.fromkeys(site.getsitepackages() + [sysconfig.get_paths()["purelib"]]):
        if Path(sp).is_dir():
            roots.append(("site-packages", Path(sp)))
    for d in extra_dirs:
        p = Path(d).expanduser()
        if not p.is_dir():
            raise CorpusError(f"corpus.extra_dirs: {p} is not a directory")
        roots.append(("extra", p))
    return roots


def _walk_py(root: Path, skip_dirs: set[str]) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
        for f in sorted(filenames):
            if f.endswith(".py"):
                yield Path(dirpath) / f


def _realpath_resolver() -> Callable[[str | Path], str]:
    """`os.path.realpath` of a file, resolving each directory once (a corpus walk holds ~100k files in a
    few thousand directories); a file that is itself a link is resolved in full."""
    real_dir = functools.lru_cache(maxsize=None)(os.path.realpath)

    def real(path: str | Path) -> str:
        path = str(path)
        if os.path.islink(path):
            return os.path.realpath(path)
        head, name = os.path.split(path)
        return os.path.join(real_dir(head), name)

    return real


def local_candidates(cfg: CorpusConfig, counts: Counter) -> tuple[list[Candidate], dict[str, LicenceInfo]]:
    """All local .py files of permissively licensed origin; excluded ones are counted in `counts`."""
    realpath = _realpath_resolver()
    owner: dict[str, LicenceInfo] = {}
    licences: dict[str, LicenceInfo] = {}
    for dist in metadata.distributions():
        info = classify_distribution_licence(dist)
        licences.setdefault(info.distribution, info)
        for f in dist.files or []:
            if str(f).endswith(".py"):
                owner[realpath(dist.locate_file(f))] = info
    licences[STDLIB_DIST] = LicenceInfo(STDLIB_DIST, sys.version.split()[0], STDLIB_LICENCE, True, "stdlib")
    out: list[Candidate] = []
    seen: set[str] = set()
    for source, root in local_roots(cfg.extra_dirs):
        skip = {"__pycache__", "site-packages", "dist-packages"} if source == "stdlib" else {"__pycache__"}
        dir_licence = licence_from_directory(root) if source == "extra" else None
        for p in _walk_py(root, skip):
            real = realpath(p)
            if real in seen:
                continue
            seen.add(real)
            counts["found"] += 1
            rel = str(p.relative_to(root))
            if source == "stdlib":
                out.append(Candidate(rel, source, STDLIB_DIST, STDLIB_LICENCE, real))
            elif source == "extra":
                out.append(Candidate(rel, source, root.name, dir_licence or "user-supplied", real))
            else:
                info = owner.get(real)
                if info is None:
                    counts["skipped_no_distribution"] += 1
                elif not info.permissive:
                    counts["skipped_licence"] += 1
                    counts[f"skipped_licence:{info.licence}"] += 1
                else:
                    out.append(Candidate(rel, source, info.distribution, info.licence, real))
    return out, licences


def hub_candidates(cfg: CorpusConfig, seed: int, shard: tuple[int, int] = (0, 1)) -> Iterator[Candidate]:
    """Stream The Stack (Python, dedup) and StackOverflow questions, mixed at `hub_stackoverflow_share`;
    `shard=(rank, world_size)` streams that share of both datasets' files (`IterableDataset.shard`)."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        raise CorpusError("corpus.source='hub' needs the Hugging Face Hub but HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set; "
                          "use corpus.source='local' offline")
    import datasets

    try:
        stack = datasets.load_dataset(cfg.hub_stack_dataset, data_dir="data/python", split="train", streaming=True)
        so = datasets.load_dataset(cfg.hub_stackoverflow_dataset, split="train", streaming=True)
        if shard[1] > 1:
            stack, so = (d.shard(num_shards=min(shard[1], d.num_shards), index=shard[0] % min(shard[1], d.num_shards))
                         for d in (stack, so))
        stack_it, so_it = iter(stack), iter(so)
        first = next(stack_it)
    except Exception as e:  # noqa: BLE001 - any hub/network failure gets the same actionable message
        raise CorpusError(
            f"corpus.source='hub': could not stream {cfg.hub_stack_dataset} / {cfg.hub_stackoverflow_dataset} "
            f"({type(e).__name__}: {str(e)[:200]}). It needs network access to huggingface.co; The Stack is gated "
            f"(accept its terms on the Hub and set HF_TOKEN). Offline, use corpus.source='local'.") from e

    def stack_rows() -> Iterator[Candidate]:
        for row in [first] if first else []:
            yield _stack_candidate(row)
        for row in stack_it:
            yield _stack_candidate(row)

    def so_rows() -> Iterator[Candidate]:
        for row in so_it:
            tags = str(row.get("Tags") or "")
            if str(row.get("PostTypeId")) != "1" or "python" not in tags:
                continue
            body = f"# {row.get('Title') or ''}\n\n{row.get('Body') or ''}"
            yield Candidate(f"stackoverflow/{row.get('Id')}", "stackoverflow", "stackoverflow",
                            str(row.get("ContentLicense") or "CC-BY-SA-4.0"), text=body)

    rng = random.Random(f"{seed}:{shard[0]}")
    a, b = stack_rows(), so_rows()
    while True:
        src = b if rng.random() < cfg.hub_stackoverflow_share else a
        try:
            yield next(src)
        except StopIteration:
            yield from (a if src is b else b)
            return


def _stack_candidate(row: dict[str, Any]) -> Candidate:
    lic = row.get("max_stars_repo_licenses") or row.get("licenses") or ["unknown"]
    return Candidate(str(row.get("max_stars_repo_path") or row.get("path") or ""), "the-stack",
                     str(row.get("max_stars_repo_name") or row.get("repository_name") or "the-stack"),
                     " OR ".join(lic) if isinstance(lic, list) else str(lic), text=row.get("content") or "")


# --------------------------------------------------------------------------- building
@dataclass
class CorpusResult:
    """What `build_corpus` produced."""

    records: list[dict[str, Any]]
    counts: dict[str, int]
    licences: dict[str, dict[str, Any]] = field(default_factory=dict)


def visiting_order(cands: list[Candidate], seed: int) -> list[Candidate]:
    """The seeded visiting order (= the deterministic sample): by a hash of (seed, source, path).

    Unlike shuffling the list, a file's rank does not depend on which other files exist, so two
    machines whose pools differ by a few packages keep the same sample apart from those files.
    """
    def rank(c: Candidate) -> bytes:
        return hashlib.blake2b(f"{seed}\0{c.source}\0{c.path}".encode(), digest_size=8).digest()

    return sorted(cands, key=lambda c: (rank(c), c.source, c.path))


def _ordered_candidates(cfg: CorpusConfig, seed: int, counts: Counter) -> tuple[Iterable[Candidate], dict[str, LicenceInfo]]:
    if cfg.source == "local":
        cands, licences = local_candidates(cfg, counts)
        return visiting_order(cands, seed), licences
    return hub_candidates(cfg, seed), {}


def examine(cand: Candidate, cfg: CorpusConfig) -> tuple[str | None, str | None]:
    """`(skip_reason, text)` of one candidate: `huge`, `unreadable:<error>`, or `check_file`'s reasons."""
    try:
        if cand.text is not None:
            raw = cand.text.encode("utf-8", errors="surrogatepass")
        else:
            if os.path.getsize(cand.abs_path) > cfg.max_file_bytes:  # type: ignore[arg-type]
                return "huge", None
            raw = Path(cand.abs_path).read_bytes()  # type: ignore[arg-type]
    except (OSError, UnicodeError) as e:
        return f"unreadable:{type(e).__name__}", None
    return check_file(raw, cand.path, cfg.max_file_bytes, cfg.min_chars)


def count_skip(counts: Counter, reason: str) -> None:
    """Count a skip under the manifest's keys (`skipped_<reason>`; `unreadable:<error>` also by error)."""
    if reason.startswith("unreadable:"):
        counts["skipped_unreadable"] += 1
        counts[reason] += 1
    elif reason in ("exact_duplicate", "near_duplicate"):
        counts[f"{reason}s"] += 1
    else:
        counts[f"skipped_{reason}"] += 1


def record_of(cand: Candidate, text: str) -> dict[str, Any]:
    """The corpus row of a kept file."""
    return {"path": cand.path, "source": cand.source, "distribution": cand.distribution, "licence": cand.licence,
            "text": text, "n_chars": len(text), "n_tokens": estimate_tokens(text),
            "sha256": hashlib.sha256(text.encode()).hexdigest()}


def iter_corpus(cfg: CorpusConfig, candidates: Iterable[Candidate], counts: Counter) -> Iterator[dict[str, Any]]:
    """Clean and deduplicate `candidates` in order, yielding kept records until `max_files`; every
    skip is counted in `counts`, and no bad file raises."""
    dedup = Deduplicator(cfg.near_dup_threshold)
    kept = 0
    # The bar counts kept files when capped, else examined files.
    total = cfg.max_files or (len(candidates) if isinstance(candidates, list) else None)
    bar = tqdm(total=total, desc=f"corpus ({cfg.source})", unit="file")
    for cand in candidates:
        if cfg.max_files and kept >= cfg.max_files:
            break
        counts["examined"] += 1
        if not cfg.max_files:
            bar.update(1)
        reason, text = examine(cand, cfg)
        if reason is None:
            assert text is not None
            reason = dedup.check(text)
        if reason:
            count_skip(counts, reason)
            continue
        rec = record_of(cand, text)  # type: ignore[arg-type]
        kept += 1
        counts["kept"] += 1
        counts["kept_chars"] += rec["n_chars"]
        counts["kept_tokens_est"] += rec["n_tokens"]
        counts[f"kept_source:{cand.source}"] += 1
        if cfg.max_files:
            bar.update(1)
        yield rec
    bar.close()


def build_corpus(cfg: CorpusConfig, seed: int = 0, candidates: Iterable[Candidate] | None = None) -> CorpusResult:
    """Clean, deduplicate and sample candidates (default: from `cfg.source`) into memory."""
    counts: Counter = Counter()
    licences: dict[str, LicenceInfo] = {}
    if candidates is None:
        candidates, licences = _ordered_candidates(cfg, seed, counts)
    records = list(iter_corpus(cfg, candidates, counts))
    counts["kept"] = len(records)
    return CorpusResult(records, dict(counts), {k: asdict(v) for k, v in licences.items()})


@dataclass
class CorpusStageResult:
    """The `corpus` step's counts (its manifest's `counts`), typed; files are counted as they are examined."""

    kept: int = 0
    """Files kept (deduplicated, cleaned)."""
    kept_chars: int = 0
    """Characters in the kept files."""
    kept_tokens_est: int = 0
    """Estimated tokens in the kept files (`estimate_tokens`)."""
    examined: int = 0
    """Candidates visited in the seeded order (until `max_files` were kept)."""
    found: int = 0
    """Local `.py` files found (the `local` source only)."""
    skipped_no_distribution: int = 0
    """site-packages files no installed distribution owns."""
    skipped_licence: int = 0
    """site-packages files of distributions without a permissive licence."""
    skipped_huge: int = 0
    """Files over `max_file_bytes`."""
    skipped_unreadable: int = 0
    """Files that could not be read."""
    skipped_binary: int = 0
    """Files with NUL bytes."""
    skipped_non_utf8: int = 0
    """Files that are not UTF-8."""
    skipped_empty: int = 0
    """Files under `min_chars` of content."""
    skipped_minified: int = 0
    """Minified files (a line over 1,000 characters, or lines over 200 on average)."""
    skipped_generated: int = 0
    """Generated files (`*_pb2.py`, or a generated-code marker in the first 15 lines)."""
    exact_duplicates: int = 0
    """Files removed as exact duplicates (content hash)."""
    near_duplicates: int = 0
    """Files removed as near duplicates (MinHash-LSH)."""
    skipped_by_licence: dict[str, int] = field(default_factory=dict)
    """licence -> files skipped for it (manifest keys `skipped_licence:<licence>`)."""
    unreadable_by_error: dict[str, int] = field(default_factory=dict)
    """exception name -> unreadable files (manifest keys `unreadable:<error>`)."""
    kept_by_source: dict[str, int] = field(default_factory=dict)
    """source -> kept files (manifest keys `kept_source:<source>`)."""

    _PREFIXES = (("skipped_licence:", "skipped_by_licence"), ("unreadable:", "unreadable_by_error"),
                 ("kept_source:", "kept_by_source"))

    @classmethod
    def from_dict(cls, counts: dict[str, int]) -> "CorpusStageResult":
        """From the manifest's flat `counts` (absent keys are 0); an unknown key is an error."""
        names = {f.name for f in fields(cls)}
        scalars: dict[str, int] = {}
        maps: dict[str, dict[str, int]] = {name: {} for _, name in cls._PREFIXES}
        for key, value in counts.items():
            prefix = next(((p, name) for p, name in cls._PREFIXES if key.startswith(p)), None)
            if prefix is not None:
                maps[prefix[1]][key[len(prefix[0]):]] = value
            elif key in names and key not in maps:
                scalars[key] = value
            else:
                raise CorpusError(f"corpus counts: unknown key {key!r} (written by a different version of corpus.py?)")
        return cls(**scalars, **maps)

    def to_counts(self) -> dict[str, int]:
        """The manifest's flat `counts` form (the inverse of `from_dict`; zero counts left out)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in {name for _, name in self._PREFIXES} and getattr(self, f.name)}
        for prefix, name in self._PREFIXES:
            out.update({f"{prefix}{k}": v for k, v in getattr(self, name).items()})
        return out


def examine_row(row: dict[str, Any], cfg: CorpusConfig) -> tuple[str | None, str | None]:
    """`examine` for a candidate row of the pipeline's list (`asdict(Candidate)`)."""
    return examine(Candidate(**row), cfg)


def _hub_rows(rank: int, world_size: int, cfg: CorpusConfig, seed: int) -> Iterator[dict[str, Any]]:
    return (asdict(c) for c in hub_candidates(cfg, seed, shard=(rank, world_size)))


def corpus_jobs(cfg: ProfileConfig, work: Path, list_file: Path | None, n_examine: int) -> list:
    """The corpus's datatrove jobs: read (a slice of the candidate list, or a shard of the hub
    stream), drop what `examine` rejects, then exact and MinHash dedup (`datapipe.dedup`)."""
    from functools import partial

    from .datapipe.dedup import DropLog, dedup_jobs
    from .datapipe.steps import ListShardReader, SkipFilter, StreamShardReader

    check = partial(examine_row, cfg=cfg.corpus)
    if list_file is not None:
        reader = ListShardReader(list_file, n_examine, check)
    else:
        per_task = -(-n_examine // cfg.data.tasks) if n_examine else 0
        reader = StreamShardReader(partial(_hub_rows, cfg=cfg.corpus, seed=cfg.seed), check, limit=per_task)
    return dedup_jobs([reader, SkipFilter(DropLog(work / "dropped" / "clean"))], work, cfg.data.tasks,
                      cfg.corpus.near_dup_threshold)


def _work_dir(cfg: ProfileConfig, step_dir: Path, n_examine: int) -> Path:
    # one folder per (candidates examined, tasks): shards of another task count never mix
    return step_dir / "pipeline" / f"examine{n_examine or 'all'}_tasks{cfg.data.tasks}"


def corpus_plan(cfg: ProfileConfig, run_dir: Path) -> list[str]:
    """The corpus pipeline's task plan (`run --dry-run`), with the tasks a killed run has finished."""
    import math

    from .datapipe.executor import plan

    n = math.ceil(cfg.corpus.max_files * cfg.corpus.examine_factor) if cfg.corpus.max_files else 0
    work = _work_dir(cfg, Path(run_dir) / STEP, n)
    list_file = work.parent / "candidates.jsonl" if cfg.corpus.source == "local" else None
    what = f"the first {n} candidates of the visiting order" if n else "every candidate"
    return [f"corpus pipeline ({cfg.corpus.source}, {what}; first pass):"] + plan(
        corpus_jobs(cfg, work, list_file, n), cfg.data, work)


def _count_kept(work: Path, tasks: int) -> int:
    from .datapipe.dedup import read_shards

    return sum(1 for _ in read_shards(work / "kept", tasks))


def run_corpus(cfg: ProfileConfig, rd: RunDir, force: bool = False) -> CorpusStageResult:
    """Stage `corpus`: write `corpus/dataset` (path, source, distribution, licence, text, n_chars,
    n_tokens, sha256) and `corpus/licences.json`; returns the manifest's counts, typed.

    The cleaning and deduplication run as a datatrove pipeline (`corpus_jobs`) on `cfg.data`'s
    executor, in `corpus/pipeline/`: a killed job resumes with its unfinished tasks, and the kept
    set is the same for any number of tasks. With `max_files`, the first `max_files *
    examine_factor` candidates of the visiting order go through it (doubled until enough survive)
    and the first `max_files` survivors are kept; the counts cover the candidates up to the last
    one kept. Records stream to disk, so memory stays flat at the paper's scale."""
    import math
    import shutil

    import datasets

    from .datapipe.dedup import minhash_bands, read_drops, read_shards
    from .datapipe.executor import run_jobs

    cfg = rd.view(STEP, cfg)
    with rd.step(STEP, force, config=cfg.corpus) as rec:
        if rec is None:
            return CorpusStageResult.from_dict(rd.manifest(STEP)["counts"])
        t0 = time.time()
        ccfg, tasks = cfg.corpus, cfg.data.tasks
        counts: Counter = Counter()
        root = rec.path / "pipeline"
        if force:
            shutil.rmtree(root, ignore_errors=True)
        list_file: Path | None = None
        licences: dict[str, LicenceInfo] = {}
        n_total = 0
        if ccfg.source == "local":
            cands, licences = local_candidates(ccfg, counts)
            list_file = root / "candidates.jsonl"
            write_jsonl_atomic(list_file, (asdict(c) for c in visiting_order(cands, cfg.seed)))
            n_total = len(cands)
        cap = ccfg.max_files
        n_examine = math.ceil(cap * ccfg.examine_factor) if cap else n_total
        if list_file is not None:
            n_examine = min(n_examine, n_total)
        job_s: dict[str, float] = {}
        while True:
            work = _work_dir(cfg, rec.path, n_examine)
            for name, sec in run_jobs(corpus_jobs(cfg, work, list_file, n_examine), cfg.data, work,
                                      desc=f"corpus ({ccfg.source}, {cfg.data.executor}, {tasks} tasks)").items():
                job_s[name] = round(job_s.get(name, 0.0) + sec, 3)
            n_survived = _count_kept(work, tasks) if cap else None
            if not cap or n_survived >= cap or list_file is None or n_examine >= n_total:  # type: ignore[operator]
                break
            print(f"corpus: {n_survived} of {n_examine} candidates survived cleaning and dedup (< max_files={cap}); "
                  f"examining {min(n_total, 2 * n_examine)}")
            n_examine = min(n_total, 2 * n_examine)
        kept_by_dist: Counter = Counter()
        kept_by_licence: Counter = Counter()
        last_order = [-1]

        def gen() -> Iterator[dict[str, Any]]:
            bar = tqdm(total=cap or None, desc="corpus: kept files to the dataset", unit="file")
            for doc in read_shards(work / "kept", tasks):
                if cap and counts["kept"] >= cap:
                    break
                m = doc.metadata
                r = record_of(Candidate(m["path"], m["source"], m["distribution"], m["licence"]), doc.text)
                last_order[0] = m["order"]
                counts["kept"] += 1
                counts["kept_chars"] += r["n_chars"]
                counts["kept_tokens_est"] += r["n_tokens"]
                counts[f"kept_source:{r['source']}"] += 1
                kept_by_dist[r["distribution"]] += 1
                kept_by_licence[r["licence"]] += 1
                bar.update(1)
                yield r
            bar.close()

        cache = rec.path / "_build_cache"
        features = datasets.Features({k: datasets.Value(t) for k, t in (
            ("path", "string"), ("source", "string"), ("distribution", "string"), ("licence", "string"),
            ("text", "string"), ("n_chars", "int64"), ("n_tokens", "int64"), ("sha256", "string"))})
        ds = datasets.Dataset.from_generator(gen, features=features, cache_dir=str(cache),
                                             fingerprint=f"corpus-{time.time_ns()}")
        if counts["kept"] == 0:
            raise CorpusError(f"corpus.source={ccfg.source!r}: no file survived cleaning (what was dropped, and why: "
                              f"{work / 'dropped'})")
        save_dataset(ds, rec.path / DATASET_NAME)
        del ds
        shutil.rmtree(cache, ignore_errors=True)
        capped = bool(cap) and counts["kept"] >= cap
        for d in read_drops(work / "dropped"):
            if not capped or d["order"] <= last_order[0]:
                count_skip(counts, d["reason"])
        counts["examined"] = sum(v for k, v in counts.items() if k.startswith("skipped_") and ":" not in k
                                 and k not in ("skipped_licence", "skipped_no_distribution")) \
            + counts["exact_duplicates"] + counts["near_duplicates"] + counts["kept"]
        # The intermediate shards repeat the kept texts; the kept shards, drop logs and markers stay.
        for name in ("clean", "unique", "exact_sigs", "minhash_sigs", "minhash_buckets"):
            shutil.rmtree(work / name, ignore_errors=True)
        lic = {k: {**asdict(v), "files_kept": kept_by_dist.get(k, 0)} for k, v in licences.items()}
        write_json_atomic(rec.path / "licences.json", lic)
        rec.counts = dict(counts)
        bands, rows = minhash_bands(ccfg.near_dup_threshold)
        rec.extra = {"build_s": round(time.time() - t0, 2), "token_estimate": estimate_tokens.__doc__.split(".")[0],
                     "licence_histogram": dict(kept_by_licence.most_common()),
                     "pipeline": {"engine": "datatrove", "executor": cfg.data.executor, "tasks": tasks,
                                  "workers": cfg.data.workers, "examined_by_pipeline": n_examine,
                                  "minhash": {"bands": bands, "rows": rows, "n_grams": 5},
                                  "stage_s": job_s,  # seconds per pipeline job, under the key run directories hold
                                  "work_dir": str(work.relative_to(rec.path))}}
    return CorpusStageResult.from_dict(rd.manifest(STEP)["counts"])


def load_corpus(rd: RunDir):  # -> datasets.Dataset
    """The corpus dataset written by `run_corpus` (one clear error if that stage has not run)."""
    import datasets

    return datasets.load_from_disk(str(rd.require(STEP) / DATASET_NAME))
