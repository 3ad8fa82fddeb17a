"""The STAC API as the source sees it, and nothing of tables: the API opened once (`api.py`), what it can do
(`capabilities.py`), HTTP with retries and signing (`stac_io.py`), and item pages (`paging.py`)."""

from .api import StacApi, open_api
from .paging import Page, iter_pages, read_concurrently
from .stac_io import RETRY_STATUSES, stac_api_io

__all__ = [
    "RETRY_STATUSES",
    "Page",
    "StacApi",
    "iter_pages",
    "open_api",
    "read_concurrently",
    "stac_api_io",
]
