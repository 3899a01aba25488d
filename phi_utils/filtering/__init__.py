"""Data quality annotation (notebook 01) and classifier filtering (notebook 02), paper §2.1.

* `annotate`: a stratified corpus sample rated by the teacher for "educational value for a
  student whose goal is to learn basic coding concepts" (0-9, probability-weighted), plus
  label-reliability checks -> `annotation/labels.jsonl`.
* `embed`: text embeddings (MiniLM offline, CodeGen-350M-mono with hub access, or this run's
  own model), cached in the run directory, sharded across processes and torchrun ranks.
* `classifier`: a random forest on the embeddings predicting the teacher's label, evaluated on
  held-out data and against a shuffled-label control, then used to filter the whole corpus
  -> `filtering/filtered`.
"""

from .annotate import AnnotationResult, build_prompt, run_annotation, stratified_sample  # noqa: F401
from .classifier import run_filtering  # noqa: F401
from .embed import Embedder, load_embedder, minilm_model_path  # noqa: F401
