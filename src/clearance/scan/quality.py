"""Measured scanner quality: precision, recall and false-positive rate on a labelled dataset.

Thresholds in this package are chosen from these measurements, not guessed; ``clearance scan eval``
prints them. A dataset is JSON Lines, one object per line::

    {"text": "...", "labels": {"injection": false, "secret": true, "pii": false},
     "split": "tune", "source": "code", "note": "AWS key in a config file"}

``split`` is ``tune`` (used to choose thresholds) or ``heldout`` (only ever reported); both are
reported separately so the held-out figures show how far the tuning generalises. Each scanner is
judged against one label (:data:`LABEL_OF`); a text is predicted positive when the scanner's
highest finding score reaches the threshold.

Example::

    from clearance.scan import PiiScanner
    from clearance.scan.quality import evaluate, parse_dataset

    items = parse_dataset(['{"text": "mail jo@corp.io", "labels": {"pii": true}, "split": "tune"}'])
    [metrics] = [m for m in evaluate(items, [PiiScanner()]) if m.split == "tune"]
    assert metrics.recall == 1.0
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from clearance.errors import ConfigError, Location
from clearance.scan.finding import Scanner, max_score

LABEL_OF: Mapping[str, str] = {"injection": "injection", "secrets": "secret", "pii": "pii"}
"""The dataset label each scanner is judged against."""

SPLITS = ("tune", "heldout")


@dataclass(frozen=True, slots=True)
class LabelledItem:
    """One dataset line."""

    text: str
    labels: Mapping[str, bool]
    split: str
    source: str = ""
    note: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class Metrics:
    """Confusion counts of one scanner on one split at one threshold."""

    scanner: str
    split: str
    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    misses: tuple[int, ...] = field(default=(), compare=False)
    false_alarms: tuple[int, ...] = field(default=(), compare=False)

    @property
    def precision(self) -> float:
        """TP / (TP + FP); 1.0 when nothing was flagged."""
        flagged = self.tp + self.fp
        return self.tp / flagged if flagged else 1.0

    @property
    def recall(self) -> float:
        """TP / (TP + FN); 1.0 when there were no positives."""
        positives = self.tp + self.fn
        return self.tp / positives if positives else 1.0

    @property
    def fpr(self) -> float:
        """FP / (FP + TN); 0.0 when there were no negatives."""
        negatives = self.fp + self.tn
        return self.fp / negatives if negatives else 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, with rates rounded to four places and the dataset lines of errors."""
        return {
            "scanner": self.scanner,
            "split": self.split,
            "threshold": self.threshold,
            "tp": self.tp,
            "fp": self.fp,
            "tn": self.tn,
            "fn": self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "fpr": round(self.fpr, 4),
            "misses": list(self.misses),
            "false_alarms": list(self.false_alarms),
        }


def parse_dataset(lines: Iterable[str], *, file: str | None = None) -> list[LabelledItem]:
    """Parse JSON Lines; blank lines are skipped.

    Raises:
        ConfigError: a line is not a JSON object with a string ``text``, a ``labels`` object of
            booleans and a ``split`` in :data:`SPLITS`; the error names the file and line.
    """
    items: list[LabelledItem] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = Location(file=file, line=number)
        try:
            data = json.loads(line)
        except ValueError as error:
            raise ConfigError(f"not JSON: {error}", location=where) from error
        items.append(_item(data, where, number))
    return items


def _item(data: object, where: Location, number: int) -> LabelledItem:
    if not isinstance(data, dict):
        raise ConfigError("each line must be a JSON object", location=where)
    unknown = set(data) - {"text", "labels", "split", "source", "note"}
    if unknown:
        raise ConfigError(f"unknown keys {sorted(unknown)}", location=where)
    text, labels, split = data.get("text"), data.get("labels"), data.get("split")
    if not isinstance(text, str):
        raise ConfigError("'text' must be a string", location=where)
    if not isinstance(labels, dict) or not all(isinstance(v, bool) for v in labels.values()):
        raise ConfigError("'labels' must be an object of booleans", location=where)
    if split not in SPLITS:
        raise ConfigError(f"'split' must be one of {list(SPLITS)}", location=where)
    return LabelledItem(
        text=text,
        labels={str(k): v for k, v in labels.items()},
        split=str(split),
        source=str(data.get("source", "")),
        note=str(data.get("note", "")),
        line=number,
    )


def scores(items: Sequence[LabelledItem], scanner: Scanner) -> list[float]:
    """The scanner's highest finding score on each item (0.0 when it found nothing)."""
    return [max_score(scanner.scan(item.text)) for item in items]


def metrics_at(
    items: Sequence[LabelledItem],
    item_scores: Sequence[float],
    scanner: str,
    split: str,
    threshold: float,
) -> Metrics:
    """Confusion counts at ``threshold`` over the items of ``split`` (``all`` for every item)."""
    label = LABEL_OF[scanner]
    tp = fp = tn = fn = 0
    misses: list[int] = []
    false_alarms: list[int] = []
    for item, score in zip(items, item_scores, strict=True):
        if split not in ("all", item.split):
            continue
        predicted = score >= threshold
        actual = item.labels.get(label, False)
        if predicted and actual:
            tp += 1
        elif predicted:
            fp += 1
            false_alarms.append(item.line)
        elif actual:
            fn += 1
            misses.append(item.line)
        else:
            tn += 1
    return Metrics(scanner, split, threshold, tp, fp, tn, fn, tuple(misses), tuple(false_alarms))


def evaluate(items: Sequence[LabelledItem], scanners: Iterable[Scanner]) -> list[Metrics]:
    """Metrics of each scanner at its own threshold, per split and over ``all`` items.

    Scanners without a label in :data:`LABEL_OF` (such as ``urls``) are skipped.
    """
    results: list[Metrics] = []
    for scanner in scanners:
        if scanner.name not in LABEL_OF:
            continue
        item_scores = scores(items, scanner)
        for split in (*SPLITS, "all"):
            results.append(metrics_at(items, item_scores, scanner.name, split, scanner.threshold))
    return results


def sweep(
    items: Sequence[LabelledItem],
    scanner: Scanner,
    thresholds: Iterable[float],
    split: str = "tune",
) -> list[Metrics]:
    """Metrics of ``scanner`` on ``split`` at each of ``thresholds``: how a threshold is chosen."""
    item_scores = scores(items, scanner)
    return [metrics_at(items, item_scores, scanner.name, split, t) for t in thresholds]
