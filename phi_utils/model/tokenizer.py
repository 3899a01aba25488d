"""Tokenizer: the paper's codegen-350M-mono tokenizer when reachable, else a byte-level BPE
trained on this run's data (paper §2.3). `<|endoftext|>` is the eos token and the document
separator when files are concatenated for training. Saved in Hugging Face format.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..config import ProfileConfig
from ..rundir import RunDir

log = logging.getLogger(__name__)

EOS = "<|endoftext|>"
"""End of text: the eos token and the separator between concatenated documents."""

PAPER_TOKENIZER = "Salesforce/codegen-350M-mono"
"""The tokenizer phi-1 uses (GPT-2 BPE plus whitespace tokens)."""

RUN_SOURCES = (("corpus", "dataset"), ("textbooks", "code_textbook"), ("exercises", "code_exercises"))
"""Run-directory datasets the tokenizer is trained on, whichever exist."""


def load_tokenizer(name_or_path: str | Path) -> Any:
    """A `PreTrainedTokenizerFast` from a local directory or a hub name (needs the network);
    `pad_token` defaults to the eos token so batches can be padded."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(name_or_path), use_fast=True)
    except Exception as e:
        raise OSError(f"tokenizer {name_or_path!s}: cannot load ({type(e).__name__}: {e})") from e
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok


def eos_id(tokenizer: Any) -> int:
    """Id of `<|endoftext|>` (the document separator of §2.3)."""
    tid = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    if tid is None or (tokenizer.unk_token_id is not None and tid == tokenizer.unk_token_id
                       and tokenizer.unk_token != "<|endoftext|>"):
        tid = tokenizer.eos_token_id
    if tid is None:
        raise ValueError("tokenizer has no <|endoftext|> token (needed as the document separator)")
    return int(tid)


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | Path | None = None,
                    min_frequency: int = 2, show_progress: bool = True) -> Any:
    """Train a GPT-2-style byte-level BPE with `vocab_size` entries (including `<|endoftext|>`)
    on `texts`; return it as a `transformers.PreTrainedTokenizerFast` (saved to `out_dir` if given).

    No prefix space is added, so `decode(encode(s)) == s` for any string.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=show_progress)
    bpe.train_from_iterator(texts, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=EOS, eos_token=EOS, unk_token=EOS, pad_token=EOS,
                                  model_max_length=int(1e9), clean_up_tokenization_spaces=False)
    if out_dir is not None:
        tok.save_pretrained(str(out_dir))
    return tok


def _run_texts(rd: RunDir, max_chars: int) -> tuple[list[str], list[str]]:
    """(sources used, texts): the `text` column of the run's datasets that exist, an equal share
    of `max_chars` from each (the leftover of a short one goes to the next)."""
    from datasets import load_from_disk

    found = [(f"{step}/{name}", rd.path / step / name) for step, name in RUN_SOURCES
             if rd.is_complete(step) and (rd.path / step / name).exists()]
    used: list[str] = []
    texts: list[str] = []
    budget = max_chars
    for k, (label, p) in enumerate(found):
        share = budget // (len(found) - k)
        got = _take_chars((t for t in load_from_disk(str(p))["text"] if t), share)
        if got:
            used.append(label)
            texts.extend(got)
            budget -= sum(len(t) for t in got)
    return used, texts


def stdlib_texts() -> Iterator[str]:
    """Python standard-library sources (the fallback when the run has no data yet)."""
    root = Path(inspect.getfile(os)).parent
    for p in sorted(root.glob("*.py")):
        try:
            yield p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue


def _take_chars(texts: Iterable[str], max_chars: int) -> list[str]:
    out, n = [], 0
    for t in texts:
        if n >= max_chars:
            break
        out.append(t[: max_chars - n])
        n += len(out[-1])
    return out


def run_tokenizer(cfg: ProfileConfig, rd: RunDir, force: bool = False) -> Any:
    """Notebook 05's step: `rd.path/"tokenizer"` in HF format, then return the loaded tokenizer.

    `cfg.tokenizer.name_or_path` set: that tokenizer (codegen-350M-mono in the paper profile).
    Otherwise a byte-level BPE of `cfg.tokenizer.vocab_size` trained on up to `train_chars` of
    the run's corpus, CodeTextbook and CodeExercises (whichever exist), or, when none exist
    yet, the Python standard library's sources (so notebook 05 also runs on its own).
    """
    cfg = rd.view("tokenizer", cfg)
    tc = cfg.tokenizer
    out = rd.path / "tokenizer"
    with rd.step("tokenizer", force, config=tc) as rec:
        if rec is None:
            return load_tokenizer(out)
        if tc.name_or_path:
            tok = load_tokenizer(tc.name_or_path)
            tok.save_pretrained(str(out))
            sources, n_chars = [tc.name_or_path], 0
        else:
            sources, texts = _run_texts(rd, tc.train_chars)
            if not texts:
                log.warning("no corpus/textbook/exercise datasets in %s; training the tokenizer on the "
                            "Python standard library instead", rd.path)
                sources, texts = ["python-stdlib"], _take_chars(stdlib_texts(), tc.train_chars)
            n_chars = sum(len(t) for t in texts)
            tok = train_tokenizer(texts, tc.vocab_size, out)
        rec.counts.update(vocab_size=len(tok), train_chars=n_chars)
        rec.extra.update(sources=sources, eos_token=tok.eos_token, eos_token_id=tok.eos_token_id)
    return tok
