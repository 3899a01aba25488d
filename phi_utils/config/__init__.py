"""Every knob of the pipeline, as dataclasses, and the three profiles.

`schema` holds one dataclass per stage (one docstring per field) and the enumerations, `profile` the
`ProfileConfig` that bundles them with compute sizing applied, `profiles` the profiles smoke/tiny/paper,
`overrides` the `--config` / `--set` layer and `paths` where the repository and shared data live.
Import from here: `from phi_utils.config import get_profile`.
"""

from .overrides import (apply_overrides, config_from_dict, describe_config, field_type, flatten, parse_set,
                        read_overrides_file, resolve_config, set_field, validate)
from .paths import REPO_ROOT, SHARED_DATA, environ_restored
from .profile import ProfileConfig, apply_compute_sizing, run_size, sized_train_config
from .profiles import get_profile, set_dotted
from .schema import (DATA_EXECUTORS, PROFILE_NAMES, SIZED_FIELDS, AnnotationConfig, Arm, Benchmark, Combine,
                     ComputeConfig, ConfigError, ContaminationConfig, CorpusConfig, CorpusSource, DataConfig,
                     DataExecutor, Device, Embedder, EvalConfig, ExerciseConfig, FilterConfig, GradeMethod,
                     InferenceDtype, ParallelMode, Precision, ProfileName, QualitativeConfig, TeacherBackend,
                     TeacherConfig, TeacherEngine, TextbookConfig, TokenizerConfig, TrainConfig, check_choices,
                     choice_error, field_docs, literal_choices)

__all__ = [
    "REPO_ROOT", "SHARED_DATA", "environ_restored",
    "ConfigError", "check_choices", "choice_error", "literal_choices", "field_docs",
    "ProfileName", "Device", "TeacherBackend", "TeacherEngine", "CorpusSource", "Embedder", "Precision",
    "ParallelMode", "Benchmark", "Arm", "InferenceDtype", "GradeMethod", "Combine", "DataExecutor",
    "PROFILE_NAMES", "DATA_EXECUTORS", "SIZED_FIELDS",
    "TeacherConfig", "CorpusConfig", "DataConfig", "AnnotationConfig", "FilterConfig", "TextbookConfig",
    "ExerciseConfig", "TokenizerConfig", "TrainConfig", "ComputeConfig", "EvalConfig", "QualitativeConfig",
    "ContaminationConfig", "ProfileConfig",
    "run_size", "sized_train_config", "apply_compute_sizing",
    "get_profile", "set_dotted",
    "apply_overrides", "resolve_config", "config_from_dict", "describe_config", "read_overrides_file",
    "parse_set", "set_field", "field_type", "validate", "flatten",
]
