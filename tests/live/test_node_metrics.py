"""The buys counter's short way to an existing child: the same children, samples and
errors as prometheus's own `labels()`."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from live.node.metrics import LabelledCounter


def test_labels_finds_the_child_prometheus_made_and_counts_as_it_does() -> None:
    registry = CollectorRegistry()
    buys = LabelledCounter("t_buys", "buys", ["outcome"], registry=registry)
    first = buys.labels("sold_out")
    assert buys.labels("sold_out") is first
    assert buys.labels(outcome="sold_out") is first  # keyword labels: the library's path
    buys.labels("sold_out").inc()
    buys.labels(7).inc()  # not a string: converted by the library, as ever
    assert buys.labels("7") is buys.labels(7)
    text = generate_latest(registry).decode()
    assert 't_buys_total{outcome="sold_out"} 1.0' in text
    assert 't_buys_total{outcome="7"} 1.0' in text


def test_a_removed_child_is_not_handed_out_again() -> None:
    buys = LabelledCounter("t_buys", "buys", ["outcome"], registry=CollectorRegistry())
    old = buys.labels("paid")
    buys.remove("paid")
    assert buys.labels("paid") is not old
    renewed = buys.labels("paid")
    buys.clear()
    assert buys.labels("paid") is not renewed


def test_wrong_labels_are_refused_as_prometheus_refuses_them() -> None:
    buys = LabelledCounter("t_buys", "buys", ["outcome"], registry=CollectorRegistry())
    buys.labels("paid")
    with pytest.raises(ValueError, match="Incorrect label count"):
        buys.labels("paid", "extra")
    with pytest.raises(ValueError, match="can not chain"):
        buys.labels("paid").labels("paid")
    with pytest.raises(ValueError, match="No label names"):
        LabelledCounter("t_plain", "plain", registry=CollectorRegistry()).labels("x")
