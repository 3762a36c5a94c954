"""Sample guards and sources of the dashboard's figures: pure functions on the view's data.

No figure below its ``min_samples`` is drawn against a threshold. Each figure the dashboard
colours carries its sample size; :func:`below_min_samples` says whether it must be drawn greyed
("n = 37 < 100") instead. The collector omits its own figures below ``min_samples``, so its
gauges are greyed only when their sample says so; a substitute nothing guarded (a recording
rule, a figure merged over collectors) is greyed unless its sample is known to reach
``min_samples``. :func:`card_texts` writes the line that says which source a card shows:

>>> card = card_texts({"realized": 0.91, "origin": "rule", "source": "recording rule",
...     "window_seconds": 300.0, "performance_window": False, "samples": 37.0,
...     "trusted": False, "min_samples": 100.0, "estimated": None,
...     "estimated_samples": 37.0, "estimated_trusted": True})
>>> card["guarded"], card["guard_text"]
(True, 'n = 37 < 100')
>>> card["source_text"]
'recording rule 5m · n = 37 labels (below min_samples 100)'
"""

from __future__ import annotations

from typing import Any

from modelmeter.dashboard import format as fmt

__all__ = ["below_min_samples", "card_texts", "sample_note"]


def below_min_samples(
    samples: float | None, min_samples: float | None, guarded_by_collector: bool
) -> bool:
    """Whether a figure must be drawn greyed instead of against its thresholds.

    ``guarded_by_collector``: the collector exports the figure only from ``min_samples`` on
    (its own gauges), so an unknown sample does not grey it; a figure nothing guarded (a
    recording rule, a merged figure, a statistic the collector exports at any sample) is greyed
    unless its sample is known to be enough.

    >>> below_min_samples(37, 100, True), below_min_samples(100, 100, False)
    (True, False)
    >>> below_min_samples(None, 100, True), below_min_samples(None, 100, False)
    (False, True)
    """
    if samples is None or min_samples is None:
        return not guarded_by_collector
    return samples < min_samples


def sample_note(samples: float | None, min_samples: float | None) -> str:
    """The short note beside a greyed figure.

    >>> sample_note(37, 100), sample_note(1234, 2000), sample_note(None, 100)
    ('n = 37 < 100', 'n = 1,234 < 2,000', 'n unknown (min_samples 100)')
    """
    if samples is None or min_samples is None:
        return f"n unknown (min_samples {fmt.count(min_samples)})"
    return f"n = {fmt.count(samples)} < {fmt.count(min_samples)}"


def card_texts(card: dict[str, Any]) -> dict[str, Any]:
    """Set a card's guards and the lines saying what it shows; returns the card.

    Reads ``realized``, ``origin`` (``collector``, ``rule`` or ``merged``), ``source`` (the
    merged note for ``merged``), ``window_seconds`` and ``performance_window`` (whether that
    window is the performance window), ``samples`` (labels behind the realized figure),
    ``trusted`` (the collector guarded it), ``min_samples``, ``estimated``,
    ``estimated_samples`` and ``estimated_trusted``. Sets ``guarded``, ``guard_text``,
    ``source_text``, ``estimated_guarded`` and ``estimated_note``.

    >>> base = {"origin": "collector", "source": "collector", "window_seconds": 172800.0,
    ...         "performance_window": True, "trusted": True, "min_samples": 100.0,
    ...         "estimated": 0.8, "estimated_samples": 5000.0, "estimated_trusted": True}
    >>> card_texts({**base, "realized": 0.9, "samples": 1234.0})["source_text"]
    'collector · performance window 2d · n = 1,234 labels'
    >>> waiting = card_texts({**base, "realized": None, "samples": 37.0})
    >>> waiting["guarded"], waiting["source_text"]
    (False, 'waiting for ≥ 100 labeled predictions in the performance window 2d · n = 37 labels')
    """
    ms, samples, value = card["min_samples"], card["samples"], card["realized"]
    guarded = value is not None and below_min_samples(samples, ms, card["trusted"])
    window = fmt.duration(card["window_seconds"])
    where = f"performance window {window}" if card["performance_window"] else window
    head = {
        "collector": f"collector · {where}",
        "rule": f"recording rule {where}",
    }.get(card["origin"], f"{card['source']} · {where}")
    n = f"n = {fmt.count(samples)} labels"
    if value is None:
        text = (
            f"waiting for ≥ {fmt.count(ms)} labeled predictions in the performance window "
            f"{window} · {n}"
        )
    elif guarded and (samples is None or ms is None):
        text = f"{head} · {n} (sample size unknown)"
    elif guarded:
        text = f"{head} · {n} (below min_samples {fmt.count(ms)})"
    else:
        text = f"{head} · {n}"
    estimated_samples = card["estimated_samples"]
    estimated_guarded = card["estimated"] is not None and below_min_samples(
        estimated_samples, ms, card["estimated_trusted"]
    )
    card.update(
        {
            "guarded": guarded,
            "guard_text": sample_note(samples, ms) if guarded else None,
            "source_text": text,
            "estimated_guarded": estimated_guarded,
            "estimated_note": sample_note(estimated_samples, ms) if estimated_guarded else None,
        }
    )
    return card
