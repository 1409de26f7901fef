"""Datasets for training: load (local file, folder or hub), detect the row shape, convert to TRL's
formats and validate. The engine calls `prepare_datasets` and nothing else here.

Never imports torch or textual.
"""

from smoltrain.engine.data.prepare import DataReport, PreparedData, prepare_datasets

__all__ = ["DataReport", "PreparedData", "prepare_datasets"]
