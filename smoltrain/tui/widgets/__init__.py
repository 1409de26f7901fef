"""Widgets the screens share: metric plots, the schema-driven settings form, the GRPO reward
picker and the memory meter. None imports torch."""
