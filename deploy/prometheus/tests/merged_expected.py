"""Write merged.yml, the promtool unit tests of ../rules/merged.yml, with its expected values.

The expected values are computed here with numpy and scipy from the per-minute event counts of
each collector: direct formulas over every bin (scipy's jensenshannon, PSI as the engine's
``psi_rows`` defines it), not the PromQL of the rules. Model ``m`` is spread over collectors c1
and c2; model ``s`` is one collector (c3) that got every event of both, so each figure of ``m``
must equal that of ``s`` and the value computed here.

Run from the repository root:
    .venv/bin/python deploy/prometheus/tests/merged_expected.py > deploy/prometheus/tests/merged.yml
With ``--alerts`` it prints the merged figures of merged_alerts.yml instead.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.distance import jensenshannon

END = 75  # minutes of input series
AT = 70  # the evaluation time (minutes)
PHASE_B = 61  # first minute of the shifted traffic
WINDOWS = {"5m": 5, "1h": 60}
EPS = 1e-4


@dataclass
class Series:
    name: str
    labels: dict[str, str]
    incr: np.ndarray  # events in minute t (index t = 0..END; incr[0] is the value at 0)
    born: int = 0  # first minute with a sample
    gauge: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def values(self) -> np.ndarray:
        return self.incr if self.gauge else np.cumsum(self.incr)


def phases(a: float, b: float) -> np.ndarray:
    """Increments: ``a`` per minute for minutes 1..60, ``b`` for 61..END."""
    incr = np.zeros(END + 1)
    incr[1:PHASE_B] = a
    incr[PHASE_B:] = b
    return incr


def born(minute: int, per_minute: float) -> np.ndarray:
    incr = np.zeros(END + 1)
    incr[minute:] = per_minute
    return incr


def constant(value: float) -> np.ndarray:
    return np.full(END + 1, float(value))


def compress(values: np.ndarray, first: int) -> str:
    """promtool's expanding notation: ``_xN`` (no sample) then ``a+bxn`` runs."""
    parts = [f"_x{first}"] if first else []
    t = first
    while t <= END:
        if t == END:
            parts.append(num(values[t]))
            break
        step = values[t + 1] - values[t]
        n = 1
        while t + n + 1 <= END and values[t + n + 1] - values[t + n] == step:
            n += 1
        parts.append(f"{num(values[t])}+{num(step)}x{n}")
        t += n + 1
    return " ".join(parts)


def num(x: float) -> str:
    return repr(float(x)).removesuffix(".0")


def window(s: Series, minutes: int) -> float:
    """Events in (AT - minutes, AT]: what one collector fed them all counts in the window."""
    return float(s.incr[AT - minutes + 1 : AT + 1].sum())


# ---------------------------------------------------------------- the traffic of model m

X_BINS = [str(i) for i in range(7)]  # bin 6: in the reference, never observed anywhere
X_REF = [0.1, 0.2, 0.25, 0.2, 0.15, 0.0, 0.1]
COLOR_BINS = ["red", "green", "blue", "other"]
COLOR_REF = [0.5, 0.3, 0.15, 0.05]
OUT_BINS = ["0", "1", "2", "3"]
OUT_REF = [0.4, 0.3, 0.2, 0.1]

# Per-minute counts per bin: (phase A, phase B) per collector.
X_COUNTS = {
    "c1": ([1, 2, 3, 2, 2, 0, 0], [0, 1, 2, 4, 5, 1, 0]),
    "c2": ([1, 2, 2, 3, 1, 0, 0], [0, 1, 1, 5, 4, 2, 0]),
}
COLOR_COUNTS = {"c1": ([3, 2, 1, 0], [3, 2, 1, 1]), "c2": ([2, 2, 1, 0], [2, 2, 1, 0])}
OUT_COUNTS = {"c1": ([4, 3, 2, 1], [1, 2, 3, 4]), "c2": ([3, 3, 2, 1], [2, 2, 3, 3])}
# Series born late: c1 counts x bin 5 from minute 66 (inside the 5m window at 70m), c2 from
# minute 61 (inside the 1h window only); c1's "other" color from minute 61.
BORN = {("c1", "x", "5"): 66, ("c2", "x", "5"): 61, ("c1", "color", "other"): 61}

# Expected one-vs-rest outcomes per minute of the binary model (class: tp, fp, fn),
# phase A and B; 10 scored predictions a minute on each collector.
ESTIMATED = {
    "c1": (
        {"1": (3.25, 0.75, 0.5), "0": (5.5, 0.5, 0.75)},
        {"1": (2.0, 2.0, 1.5), "0": (4.5, 1.5, 2.0)},
    ),
    "c2": (
        {"1": (2.5, 0.5, 1.0), "0": (6.0, 1.0, 0.5)},
        {"1": (1.5, 1.25, 2.0), "0": (5.25, 2.0, 1.25)},
    ),
}
# A multiclass model (no positive class: macro averages), constant traffic.
MULTICLASS = {
    "c1": {"a": (4.0, 1.0, 2.0), "b": (3.0, 2.0, 0.5), "c": (1.0, 0.5, 1.0)},
    "c2": {"a": (2.0, 0.5, 1.5), "b": (4.0, 1.0, 1.0), "c": (0.5, 1.0, 0.0)},
}
ROWS = {"c1": (10, 10), "c2": (10, 10)}
ERRORS = {"c1": (12.5, 20.0), "c2": (11.25, 18.75)}
PREDICTIONS = {"c1": (10, 10), "c2": (10, 10)}
MISSING_X = {"c1": (1, 2), "c2": (0, 1)}
WINDOW_GAUGES = {  # predictions, labeled, coverage of each collector's own window
    "c1": (50, 20, 0.4),
    "c2": (40, 10, 0.25),
}
THRESHOLDS = {"drift_psi": 0.2}
MIN_SAMPLES = 20


def collector_series(instance: str, model: str) -> list[Series]:
    out: list[Series] = []
    mv = {"model": model, "version": "v1"}
    for feature, bins, counts in (
        ("x", X_BINS, X_COUNTS),
        ("color", COLOR_BINS, COLOR_COUNTS),
    ):
        a, b = counts[instance]
        for j, name in enumerate(bins):
            start = BORN.get((instance, feature, name))
            if start is not None:
                incr = born(start, b[j])
                assert a[j] == 0
            elif a[j] == 0 and b[j] == 0:
                continue  # never observed: no series
            else:
                incr, start = phases(a[j], b[j]), 0
            out.append(
                Series(
                    "model_feature_bin_observations_total",
                    {**mv, "feature": feature, "bin": name},
                    incr,
                    start,
                )
            )
    a, b = OUT_COUNTS[instance]
    for j, name in enumerate(OUT_BINS):
        out.append(
            Series(
                "model_prediction_bin_observations_total",
                {**mv, "bin": name},
                phases(a[j], b[j]),
            )
        )
    phase_a, phase_b = ESTIMATED[instance]
    for cls in ("0", "1"):
        for k, outcome in enumerate(("tp", "fp", "fn")):
            out.append(
                Series(
                    "model_estimated_outcomes_total",
                    {**mv, "class": cls, "outcome": outcome},
                    phases(phase_a[cls][k], phase_b[cls][k]),
                )
            )
    out.append(Series("model_multivariate_reconstruction_rows_total", mv, phases(*ROWS[instance])))
    out.append(
        Series("model_multivariate_reconstruction_error_sum_total", mv, phases(*ERRORS[instance]))
    )
    out.append(Series("model_predictions_total", mv, phases(*PREDICTIONS[instance])))
    out.append(
        Series(
            "model_feature_quality_issues_total",
            {**mv, "feature": "x", "issue": "missing"},
            phases(*MISSING_X[instance]),
        )
    )
    return out


def gauges(instance: str, model: str) -> list[Series]:
    mv = {"model": model, "version": "v1"}
    out = [
        Series("model_info", {**mv, "task": "binary"}, constant(1), gauge=True),
        Series("model_positive_class_info", {**mv, "class": "1"}, constant(1), gauge=True),
        Series("model_min_samples", {"model": model}, constant(MIN_SAMPLES), gauge=True),
    ]
    for name, value in THRESHOLDS.items():
        out.append(
            Series(
                "model_alert_threshold",
                {"model": model, "threshold": name},
                constant(value),
                gauge=True,
            )
        )
    for feature, bins, ref in (("x", X_BINS, X_REF), ("color", COLOR_BINS, COLOR_REF)):
        for name, ratio in zip(bins, ref, strict=True):
            out.append(
                Series(
                    "model_feature_reference_ratio",
                    {"model": model, "feature": feature, "bin": name},
                    constant(ratio),
                    gauge=True,
                )
            )
    for name, ratio in zip(OUT_BINS, OUT_REF, strict=True):
        out.append(
            Series(
                "model_prediction_reference_ratio",
                {"model": model, "bin": name},
                constant(ratio),
                gauge=True,
            )
        )
    return out


def window_gauges(instance: str, model: str) -> list[Series]:
    mv = {"model": model, "version": "v1"}
    predictions, labeled, coverage = WINDOW_GAUGES[instance]
    return [
        Series("model_window_predictions", mv, constant(predictions), gauge=True),
        Series("model_window_labeled_predictions", mv, constant(labeled), gauge=True),
        Series("model_label_coverage_ratio", mv, constant(coverage), gauge=True),
    ]


def multiclass(instance: str) -> list[Series]:
    mv = {"model": "mc", "version": "v1"}
    out = [Series("model_info", {**mv, "task": "multiclass"}, constant(1), gauge=True)]
    for cls, outcomes in MULTICLASS[instance].items():
        for k, outcome in enumerate(("tp", "fp", "fn")):
            out.append(
                Series(
                    "model_estimated_outcomes_total",
                    {**mv, "class": cls, "outcome": outcome},
                    phases(outcomes[k], outcomes[k]),
                )
            )
    return out


def merged_into_one(parts: list[list[Series]], model: str) -> list[Series]:
    """What one collector fed every event exports: counters summed, born at the first."""
    by_key: dict[tuple[str, tuple[tuple[str, str], ...]], Series] = {}
    for series in (s for part in parts for s in part):
        labels = {**series.labels, "model": model}
        key = (series.name, tuple(sorted(labels.items())))
        if key not in by_key:
            by_key[key] = Series(series.name, labels, series.incr.copy(), series.born)
        else:
            by_key[key].incr += series.incr
            by_key[key].born = min(by_key[key].born, series.born)
    return list(by_key.values())


# ---------------------------------------------------------------- expected figures


def counts(series: list[Series], name: str, minutes: int, **match: str) -> float:
    return sum(
        window(s, minutes)
        for s in series
        if s.name == name and all(s.labels.get(k) == v for k, v in match.items())
    )


def psi(ref: list[float], observed: np.ndarray) -> float:
    p = np.maximum(np.asarray(ref), EPS)
    q = np.maximum(observed / observed.sum(), EPS)
    return float(np.sum((q - p) * np.log(q / p)))


def js(ref: list[float], observed: np.ndarray) -> float:
    return float(jensenshannon(np.asarray(ref), observed / observed.sum(), base=2))


def classification(outcomes: dict[str, tuple[float, float, float]], positive: str | None) -> dict:
    tp = {c: o[0] for c, o in outcomes.items()}
    fp = {c: o[1] for c, o in outcomes.items()}
    fn = {c: o[2] for c, o in outcomes.items()}
    precision = {c: tp[c] / (tp[c] + fp[c]) for c in outcomes}
    recall = {c: tp[c] / (tp[c] + fn[c]) for c in outcomes}
    f1 = {c: 2 * tp[c] / (2 * tp[c] + fp[c] + fn[c]) for c in outcomes}
    pick = (lambda d: d[positive]) if positive else (lambda d: float(np.mean(list(d.values()))))
    return {
        "accuracy": sum(tp.values()) / sum(tp[c] + fn[c] for c in outcomes),
        "precision": pick(precision),
        "recall": pick(recall),
        "f1_score": pick(f1),
        "class_precision": precision,
        "class_recall": recall,
        "class_f1_score": f1,
    }


def outcome_counts(series: list[Series], model: str, minutes: int) -> dict:
    classes = sorted(
        {s.labels["class"] for s in series if s.name == "model_estimated_outcomes_total"}
    )
    return {
        c: tuple(
            counts(
                series,
                "model_estimated_outcomes_total",
                minutes,
                model=model,
                **{"class": c, "outcome": o},
            )
            for o in ("tp", "fp", "fn")
        )
        for c in classes
    }


# ---------------------------------------------------------------- the YAML


def series_line(s: Series, instance: str) -> str:
    labels = {"job": "modelmeter", "instance": instance, **s.labels}
    text = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return f"      - series: '{s.name}{{{text}}}'\n        values: '{compress(s.values(), s.born)}'"


def close(expr: str, value: float, labels: str, at: str = f"{AT}m") -> str:
    return (
        f"      - expr: 'abs({expr} - {float(value)!r}) < bool 1e-9'\n"
        f"        eval_time: {at}\n"
        f"        exp_samples:\n"
        f"          - labels: '{labels}'\n"
        f"            value: 1"
    )


def exact(expr: str, value: float, labels: str, at: str = f"{AT}m") -> str:
    return (
        f"      - expr: '{expr}'\n"
        f"        eval_time: {at}\n"
        f"        exp_samples:\n"
        f"          - labels: '{expr.split('{')[0]}{labels}'\n"
        f"            value: {num(value)}"
    )


def lbl(**kv: str) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in kv.items()) + "}"


def main() -> None:
    c1 = collector_series("c1", "m")
    c2 = collector_series("c2", "m")
    one = merged_into_one([c1, c2], "s")
    out: list[str] = []
    w = out.append
    w(HEADER)
    w("  - name: merged rules - model m on two collectors equals model s on one, and numpy")
    w("    interval: 1m")
    w("    input_series:")
    for instance, part in (("c1", c1), ("c2", c2), ("c3", one)):
        for s in part:
            w(series_line(s, instance))
    for instance, model in (("c1", "m"), ("c2", "m"), ("c3", "s")):
        for s in gauges(instance, model):
            w(series_line(s, instance))
    for instance in ("c1", "c2"):
        for s in window_gauges(instance, "m"):
            w(series_line(s, instance))
    for instance in ("c1", "c2"):
        for s in multiclass(instance):
            w(series_line(s, instance))
    w("    promql_expr_test:")

    # Gauges of the collectors' windows.
    w(exact('model:collector_instances:count{model="m"}', 2, lbl(model="m")))
    w(exact('model:collector_instances:count{model="s"}', 1, lbl(model="s")))
    mv = lbl(model="m", version="v1")
    w(exact('model:window_predictions:sum{model="m"}', 90, mv))
    w(exact('model:window_labeled_predictions:sum{model="m"}', 30, mv))
    coverage = (50 * 0.4 + 40 * 0.25) / 90
    w(close('model:label_coverage:ratio{model="m"}', coverage, mv))
    w(
        exact(
            'model_feature_bin:reference_ratio:max{model="m", feature="x", bin="2"}',
            0.25,
            lbl(model="m", feature="x", bin="2"),
        )
    )
    w(
        exact(
            'model_bin:prediction_reference_ratio:max{model="m", bin="3"}',
            0.1,
            lbl(model="m", bin="3"),
        )
    )

    mc = multiclass("c1") + multiclass("c2")
    for suffix, minutes in WINDOWS.items():
        at = f"{AT}m"
        for model, series in (("m", c1 + c2), ("s", one)):
            mvl = lbl(model=model, version="v1")
            # Estimated figures, binary (positive class 1).
            oc = outcome_counts(series, model, minutes)
            for cls in ("0", "1"):
                for k, outcome in enumerate(("tp", "fp", "fn")):
                    w(
                        close(
                            f'model_class:estimated_outcomes:window{suffix}{{model="{model}", '
                            f'class="{cls}", outcome="{outcome}"}}',
                            oc[cls][k],
                            lbl(model=model, version="v1", **{"class": cls, "outcome": outcome}),
                            at,
                        )
                    )
            figures = classification(oc, "1")
            for metric in ("accuracy", "precision", "recall", "f1_score"):
                w(
                    close(
                        f'model:estimated_{metric}:ratio_rate{suffix}{{model="{model}"}}',
                        figures[metric],
                        mvl,
                        at,
                    )
                )
            for metric in ("precision", "recall", "f1_score"):
                for cls in ("0", "1"):
                    w(
                        close(
                            f"model_class:estimated_{metric}:ratio_rate{suffix}"
                            f'{{model="{model}", class="{cls}"}}',
                            figures[f"class_{metric}"][cls],
                            lbl(model=model, version="v1", **{"class": cls}),
                            at,
                        )
                    )
            # Drift of the features and of the output.
            for feature, bins, ref in (("x", X_BINS, X_REF), ("color", COLOR_BINS, COLOR_REF)):
                observed = np.array(
                    [
                        counts(
                            series,
                            "model_feature_bin_observations_total",
                            minutes,
                            model=model,
                            feature=feature,
                            bin=b,
                        )
                        for b in bins
                    ]
                )
                fl = lbl(model=model, version="v1", feature=feature)
                for b, n in zip(bins, observed, strict=True):
                    if n and b in ("3", "5", "other"):
                        w(
                            exact(
                                f'model_feature_bin:observations:window{suffix}{{model="{model}", '
                                f'feature="{feature}", bin="{b}"}}',
                                n,
                                lbl(model=model, version="v1", feature=feature, bin=b),
                                at,
                            )
                        )
                        w(
                            close(
                                f'model_feature_bin:proportion:window{suffix}{{model="{model}", '
                                f'feature="{feature}", bin="{b}"}}',
                                n / observed.sum(),
                                lbl(model=model, version="v1", feature=feature, bin=b),
                                at,
                            )
                        )
                w(
                    exact(
                        f'model_feature:observations:window{suffix}{{model="{model}", '
                        f'feature="{feature}"}}',
                        observed.sum(),
                        fl,
                        at,
                    )
                )
                value = psi(ref, observed)
                w(
                    close(
                        f'model_feature:psi:window{suffix}{{model="{model}", feature="{feature}"}}',
                        value,
                        fl,
                        at,
                    )
                )
                w(
                    close(
                        f'model_feature:jensen_shannon:window{suffix}{{model="{model}", '
                        f'feature="{feature}"}}',
                        js(ref, observed),
                        fl,
                        at,
                    )
                )
                flag = int(value > THRESHOLDS["drift_psi"])
                w(
                    exact(
                        f'model_feature:drift_detected:window{suffix}{{model="{model}", '
                        f'feature="{feature}"}}',
                        flag,
                        fl,
                        at,
                    )
                )
                print(f"# {model} {suffix} {feature}: psi {value:.4f}", file=sys.stderr)
            observed = np.array(
                [
                    counts(
                        series,
                        "model_prediction_bin_observations_total",
                        minutes,
                        model=model,
                        bin=b,
                    )
                    for b in OUT_BINS
                ]
            )
            w(
                exact(
                    f'model_bin:prediction_observations:window{suffix}{{model="{model}", bin="2"}}',
                    observed[2],
                    lbl(model=model, version="v1", bin="2"),
                    at,
                )
            )
            w(
                close(
                    f'model_bin:prediction_proportion:window{suffix}{{model="{model}", bin="2"}}',
                    observed[2] / observed.sum(),
                    lbl(model=model, version="v1", bin="2"),
                    at,
                )
            )
            w(
                exact(
                    f'model:prediction_observations:window{suffix}{{model="{model}"}}',
                    observed.sum(),
                    mvl,
                    at,
                )
            )
            w(
                close(
                    f'model:prediction_psi:window{suffix}{{model="{model}"}}',
                    psi(OUT_REF, observed),
                    mvl,
                    at,
                )
            )
            w(
                close(
                    f'model:prediction_jensen_shannon:window{suffix}{{model="{model}"}}',
                    js(OUT_REF, observed),
                    mvl,
                    at,
                )
            )
            if suffix == "5m":
                rows = counts(
                    series, "model_multivariate_reconstruction_rows_total", minutes, model=model
                )
                errors = counts(
                    series,
                    "model_multivariate_reconstruction_error_sum_total",
                    minutes,
                    model=model,
                )
                w(
                    exact(
                        f'model:multivariate_reconstruction_rows:window5m{{model="{model}"}}',
                        rows,
                        mvl,
                        at,
                    )
                )
                w(
                    close(
                        f'model:multivariate_reconstruction_error:mean5m{{model="{model}"}}',
                        errors / rows,
                        mvl,
                        at,
                    )
                )
                predictions = counts(series, "model_predictions_total", minutes, model=model)
                missing = counts(series, "model_feature_quality_issues_total", minutes, model=model)
                w(exact(f'model:predictions:window5m{{model="{model}"}}', predictions, mvl, at))
                w(
                    close(
                        f'model_feature_issue:quality_issues:ratio_rate5m{{model="{model}"}}',
                        missing / predictions,
                        lbl(model=model, version="v1", feature="x", issue="missing"),
                        at,
                    )
                )
        # The multiclass model: macro averages.
        oc = outcome_counts(mc, "mc", minutes)
        figures = classification(oc, None)
        for metric in ("accuracy", "precision", "recall", "f1_score"):
            w(
                close(
                    f'model:estimated_{metric}:ratio_rate{suffix}{{model="mc"}}',
                    figures[metric],
                    lbl(model="mc", version="v1"),
                    f"{AT}m",
                )
            )
    print("\n".join(out))


HEADER = """\
# promtool unit tests of every recording rule in ../rules/merged.yml. GENERATED by
# merged_expected.py next to this file (run it to change the scenario): the expected values are
# computed there with numpy and scipy from the per-minute event counts of each collector (PSI as
# the engine's psi_rows defines it, scipy's jensenshannon base 2, precision/recall/F1 from the
# one-vs-rest counts), not from PromQL.
#
# Model m (binary, positive class 1) is spread over collectors c1 and c2; model s is one
# collector, c3, that got every event of both (its counters are c1's + c2's). Each figure of m
# must equal the one of s and numpy's, to 1e-9. The traffic shifts at minute 61; at 70m the 5m
# window holds only shifted traffic, the 1h window both (it starts at 10m). Edge cases in it:
# series born inside the window (x bin 5: on c1 from minute 66, on c2 from 61; color other on c1
# from 61), a bin whose window count is 0 (x bin 0 after minute 60: q floors at 1e-4), a
# reference bin that no collector ever counted (x bin 6: no series, only its reference ratio) and
# a reference ratio of 0 (x bin 5). Feature x drifts (PSI above drift_psi 0.2), color does not.
# Model mc (multiclass, no positive class) checks the macro averages. Reset, scrape gap and a
# series born alone: merged_windows.yml.
rule_files:
  - ../rules/merged.yml

evaluation_interval: 1m

tests:"""


def alert_figures() -> None:
    """The merged figures of merged_alerts.yml (per-minute counts of c1 and c2 summed)."""

    def accuracy(*classes: tuple[float, float, float]) -> float:
        return sum(c[0] for c in classes) / sum(c[0] + c[2] for c in classes)

    figures = {
        # realized (class 1, class 0) (tp, fp, fn) per minute: c1 + c2
        "LowModelAccuracy a accuracy": accuracy((30 + 10, 0, 5 + 10), (45 + 15, 0, 10 + 15)),
        "CriticalModelAccuracy d accuracy": accuracy((20 + 15, 0, 10 + 10), (10 + 15, 0, 10 + 10)),
        "EstimatedAccuracyDrop a estimated accuracy": accuracy(
            (3 + 2, 0, 1 + 2), (4 + 3, 0, 1 + 2)
        ),
        "LabelsMissing a coverage": (0.3 * 100 + 0.1 * 100) / 200,
        "LabelsMissing b coverage": (0.9 * 300 + 0.2 * 150) / 450,
        "FeatureDrift a x psi": psi([0.5, 0.3, 0.2], np.array([2 + 3, 3 + 2, 5 + 5.0])),
        "FeatureDrift a y psi": psi([0.5, 0.5], np.array([5 + 6, 5 + 4.0])),
        "FeatureDrift c x psi": psi([0.5, 0.3, 0.2], np.array([1, 1, 2.0])),
        "PredictionDrift a,b psi": psi([0.7, 0.3], np.array([3 + 2, 2 + 3.0])),
        "MultivariateDrift a mean": (15 + 13) / (10 + 10),
        "MultivariateDrift b mean": (12 + 13) / (10 + 10),
        "DataQuality a ratio": (1 + 0) / (10 + 10),
        "DataQuality b ratio": (1 + 0) / (25 + 25),
    }
    for name, value in figures.items():
        print(f"{name}: {value!r}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--alerts"]:
        alert_figures()
    else:
        main()
