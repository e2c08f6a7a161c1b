"""Qwen-VL text formats: task templates, box/quad normalisation, segments, conversation import/export.

Pure Python; importing it pulls in nothing heavy.
"""

from vlforge.formats.errors import FieldError
from vlforge.formats.tasks import TASKS, image_fields, render

__all__ = ["TASKS", "FieldError", "image_fields", "render"]
