"""The collector service: the ingestion API, the JSON API and ``/metrics``.

>>> from modelmeter.service import create_app
"""

from __future__ import annotations

from modelmeter.service.app import create_app

__all__ = ["create_app"]
