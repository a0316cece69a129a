"""Command-line tools: ``dsstne <command>`` and the original's command names."""
