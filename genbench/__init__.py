"""GenBench Kit library: the science of the pipeline (datasets, prompts, generators, features,
metrics, probing, storage). Pure functions and small classes; it never reads params.yaml,
never talks to MLflow and never prices anything."""

__version__ = "0.1.0"
