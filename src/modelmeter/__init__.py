"""modelmeter: real-time monitoring of machine-learning models in production.

``import modelmeter`` loads the SDK alone (``Client``, ``monitor``; the standard library and
psutil, see docs/sdk.md); the collector, the dashboard and the demo are imported only when
used, from their own packages.
"""

from __future__ import annotations

from modelmeter.sdk import Client as Client
from modelmeter.sdk import monitor as monitor

__version__ = "0.1.0"

__all__ = ["Client", "__version__", "monitor"]
