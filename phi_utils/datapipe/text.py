"""Text pieces shared by the data steps (no datatrove import, so `phi_utils.corpus` stays light)."""

import re

CODE_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
"""Code tokens: words and single punctuation marks (MinHash shingles and the corpus's token estimate)."""
