"""modelmeter: real-time monitoring of machine-learning models in production."""

from __future__ import annotations

from modelmeter.sdk import Client as Client
from modelmeter.sdk import monitor as monitor

__version__ = "0.1.0"

__all__ = ["Client", "__version__", "monitor"]
