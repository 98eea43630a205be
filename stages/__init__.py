"""DVC stages: one module per stage, each a thin `genbench` subcommand that reads its own params
section, meters the work, calls the library, writes outputs atomically and logs to MLflow."""
