"""The dress rehearsal of a profile: stand-in models and data in the real layouts, a size overlay, `dvc repro`, checks."""
