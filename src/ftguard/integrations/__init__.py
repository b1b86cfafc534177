"""Integrations with training stacks: the transformers callbacks and the launcher."""
