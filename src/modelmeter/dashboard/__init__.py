"""The live dashboard: a Dash app that reads only the Prometheus HTTP API.

>>> from modelmeter.dashboard import create_app
>>> create_app("http://localhost:9090").title
'modelmeter'
"""

from __future__ import annotations

from modelmeter.dashboard.app import create_app
from modelmeter.dashboard.queries import PromClient, Selection

__all__ = ["PromClient", "Selection", "create_app"]
