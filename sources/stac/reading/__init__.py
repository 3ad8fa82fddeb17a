"""Reading the API's items into load packages: a resource's reading across its packages, where its cursors move
(`reading.py`), what a run asks the server before it reads (`probes.py`), late arrivals (`late_arrivals.py`),
named searches (`searches.py`), reconcile runs (`reconcile.py`), and a run's window and package limits
(`settings.py`)."""

from .reading import PackageLimits, Reading, ReadingAcrossPackages, items_reading, search_reading
from .reconcile import LISTING_COLUMNS, LISTING_TABLE, Reconciler, Selection, is_reconciling
from .searches import NamedSearch, checked_search
from .settings import package_limits, window_settings

__all__ = [
    "LISTING_COLUMNS",
    "LISTING_TABLE",
    "NamedSearch",
    "PackageLimits",
    "Reading",
    "ReadingAcrossPackages",
    "Reconciler",
    "Selection",
    "checked_search",
    "is_reconciling",
    "items_reading",
    "package_limits",
    "search_reading",
    "window_settings",
]
