"""Contamination analysis (paper §5, notebook 11): n-gram overlap, embedding distance, AST match rate,
pruning, retraining on pruned sets, Table 3.

Public API::

    from phi_utils.contamination import run_contamination        # the stage: writes rd.path/"contamination"
    summary = run_contamination(cfg, rd, force=False)

    from phi_utils.contamination import match_rate, match_matrix, canonical_string, exact_match_rate
    match_rate(code_a, code_b)            # τ in [0, 1] (definition: `ast_match` module docstring)
    match_matrix(strs_a, strs_b)          # all pairs of canonical strings, rapidfuzz C++ (fast)
    exact_match_rate(code_a, code_b)      # 1 - normalised APTED tree edit distance (slow, exact)

    from phi_utils.contamination import overlap_table, build_index, find_overlaps
    overlap_table({pid: docstring}, [(doc_id, text), ...], n=13)  # -> [NgramOverlap], hashed index

    from phi_utils.contamination import prune_counts, PruneAccumulator, close_pairs
    from phi_utils.contamination import embedding   # load / encode_cached / l2_matrix / nearest
    from phi_utils.contamination import report      # notebook 11 helpers (closest pairs, figures' data)
"""

from .ast_match import canonical_string, canonical_tokens, exact_match_rate, match_matrix, match_rate
from .ngram import NgramIndex, build_index, find_overlaps, overlap_table
from .prune import PruneAccumulator, close_pairs, prune_counts
from .stage import ContaminationError, run_contamination

__all__ = ["canonical_string", "canonical_tokens", "exact_match_rate", "match_matrix", "match_rate", "NgramIndex",
           "build_index", "find_overlaps", "overlap_table", "PruneAccumulator", "close_pairs", "prune_counts",
           "ContaminationError", "run_contamination"]
