"""The modelmeter SDK: report predictions and labels from a model service, without slowing it.

``Client`` queues events in memory (bounded) and a background daemon thread sends them in
batches to the collector's HTTP API, retrying with exponential backoff and jitter when the
collector is unreachable or overloaded. A model spread over several collectors gets a list
of URLs: each event goes to the collector its prediction id hashes to (rendezvous hashing),
with a queue and a sender thread per collector. ``monitor`` wraps a scikit-learn style estimator so
that every ``predict``/``predict_proba`` call is reported.

The caller's thread only appends to a queue: no JSON, no I/O, no exception ever reaches the
model service. What cannot be delivered is counted in ``client.stats``, logged
(rate-limited, logger ``modelmeter.sdk``) and reported to the collector with the next
predictions request (``resources.dropped``, exported as
``modelmeter_client_dropped_events_total``).

The SDK needs the standard library and psutil only: HTTP is ``http.client``, JSON is
``json`` (orjson when it is installed), and numpy and pandas objects are understood when the
caller passes them, never imported. The modules, one concept each:

* ``client``: ``Client``, the public API (``log_*``, ``stats``, ``flush``, ``close``);
* ``queue``: the bounded queue, its counts and the batches the sender takes;
* ``events``: what a call queues, and the JSON events made of it off-thread;
* ``routing``: which collector an id goes to (rendezvous hashing, BLAKE2b-64);
* ``sender``: the background thread (retries, backoff, acknowledgements, drop reports);
* ``transport``: one keep-alive HTTP(S) connection, proxies from the environment;
* ``encoding``: JSON bytes, numpy values and NaN handled the same with or without orjson;
* ``resources``: the replica name, CPU and memory (psutil);
* ``estimator``: ``MonitoredEstimator`` and ``monitor``;
* ``logs``: the ``modelmeter.sdk`` logger and its rate limit.

Examples
--------
>>> import modelmeter
>>> client = modelmeter.Client("http://127.0.0.1:9", model="iris", flush_interval=60)
>>> pid = client.log_prediction({"petal_length": 1.4}, prediction="setosa", id="p-1")
>>> pid
'p-1'
>>> client.log_label("p-1", "setosa")
>>> client.stats["queued"]
2
>>> client.close(timeout=0)
False
"""

from __future__ import annotations

from modelmeter.sdk.client import Client
from modelmeter.sdk.estimator import MonitoredEstimator, monitor
from modelmeter.sdk.resources import replica_name

__all__ = ["Client", "MonitoredEstimator", "monitor", "replica_name"]
