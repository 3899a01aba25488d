"""Contamination analysis (paper §5): n-gram overlap, embedding distance, AST match rate, pruning, Table 3."""

from .ast_match import canonical_string, canonical_tokens, exact_match_rate, match_matrix, match_rate
from .ngram import NgramIndex, build_index, find_overlaps, overlap_table
from .prune import PruneAccumulator, close_pairs, prune_counts
from .stage import ContaminationError, run_contamination

__all__ = ["canonical_string", "canonical_tokens", "exact_match_rate", "match_matrix", "match_rate", "NgramIndex",
           "build_index", "find_overlaps", "overlap_table", "PruneAccumulator", "close_pairs", "prune_counts",
           "ContaminationError", "run_contamination"]
