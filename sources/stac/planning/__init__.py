"""Planning a run's reading, with no I/O: windows and cursors (`windows.py`), what a collection's cursor follows
(`cursor_fields.py`), windows cut into parts and bundled into searches (`cuts.py`), and where a reading stands,
saved with each load package (`checkpoints.py`). What a plan asks the server lives in `reading/probes.py`."""

from .checkpoints import (
    Checkpoint,
    Part,
    backfill_state,
    cursor_field_names,
    has_unread_parts,
    parts_end,
    saved_backfill,
    saved_checkpoints,
    started_at_cursor,
)
from .cursor_fields import DATETIME, UPDATED_NAME, CursorField, is_null, item_cursor, saved_field
from .cuts import (
    Conditions,
    CutWindow,
    PlannedWindow,
    any_of,
    bundled,
    collections_per_search,
    cut_points,
    groups_of,
    one_page,
    parts_of,
)
from .windows import Cursor, Window, WindowFilter, WindowSettings, loaded_at_start, plan_window

__all__ = [
    "DATETIME",
    "UPDATED_NAME",
    "Checkpoint",
    "Conditions",
    "Cursor",
    "CursorField",
    "CutWindow",
    "Part",
    "PlannedWindow",
    "Window",
    "WindowFilter",
    "WindowSettings",
    "any_of",
    "backfill_state",
    "bundled",
    "collections_per_search",
    "cursor_field_names",
    "cut_points",
    "groups_of",
    "has_unread_parts",
    "is_null",
    "item_cursor",
    "loaded_at_start",
    "one_page",
    "parts_end",
    "parts_of",
    "plan_window",
    "saved_backfill",
    "saved_checkpoints",
    "saved_field",
    "started_at_cursor",
]
