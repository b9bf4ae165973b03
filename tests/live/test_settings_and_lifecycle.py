"""Pure tables and settings: no I/O."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from checkout.order_states import (TERMINAL, TRANSITIONS, IllegalTransition, OrderState,
                                   StockEffect, next_state, rules_for)
from live.node.services import Services
from live.settings import Settings
from live.streams.lifecycle import IllegalStreamMove, StreamAction, StreamState, apply


def test_stream_lifecycle_table_is_exactly_the_legal_moves() -> None:
    legal = {(StreamState.SCHEDULED, StreamAction.GO_LIVE): StreamState.LIVE,
             (StreamState.SCHEDULED, StreamAction.CANCEL): StreamState.CANCELLED,
             (StreamState.LIVE, StreamAction.END): StreamState.ENDED}
    for state, action in itertools.product(StreamState, StreamAction):
        if (state, action) in legal:
            assert apply(state, action) is legal[(state, action)]
        else:
            with pytest.raises(IllegalStreamMove):
                apply(state, action)


def test_order_table_gives_stock_back_on_every_failed_sale() -> None:
    for (src, dst), effect in TRANSITIONS.items():
        if dst in (OrderState.DECLINED, OrderState.EXPIRED, OrderState.CANCELLED):
            assert effect is StockEffect.RELEASE
        if dst is OrderState.VOIDED:
            assert effect is StockEffect.RESTORE
    assert TERMINAL == {OrderState.DECLINED, OrderState.EXPIRED, OrderState.CANCELLED,
                        OrderState.VOIDED, OrderState.REFUNDED}
    with pytest.raises(IllegalTransition):
        next_state(OrderState.PAID, OrderState.EXPIRED)
    assert rules_for(OrderState.PAID) == "paying=sell=none;authorized=none=none"
    assert rules_for(OrderState.EXPIRED) == "reserved=release=none;paying=release=void"


def test_settings_from_env_parse_and_validate(tmp_path: Path) -> None:
    s = Settings.from_env({"LIVECART_PORT": "9001", "LIVECART_DATA_DIR": str(tmp_path),
                           "LIVECART_ALLOWED_ORIGINS": "https://a.example, https://b.example",
                           "LIVECART_DEMO": "yes"}, host="0.0.0.0")
    assert (s.port, s.data_dir, s.demo, s.host) == (9001, tmp_path, True, "0.0.0.0")
    assert s.allowed_origins == ("https://a.example", "https://b.example")
    assert s.base_url == "http://127.0.0.1:9001"
    with pytest.raises(ValueError, match="LIVECART_PORT"):
        Settings.from_env({"LIVECART_PORT": "eighty"})
    with pytest.raises(ValueError, match="durability"):
        Settings.from_env({"LIVECART_DURABILITY": "hope"})
    replicated = Settings.from_env({"LIVECART_DURABILITY": "replicated",
                                    "LIVECART_REPLICA_ACK_TIMEOUT_MS": "250"})
    assert (replicated.durability, replicated.replica_ack_timeout_ms) == ("replicated", 250)
    with pytest.raises(ValueError, match="replica_ack_timeout_ms"):
        Settings.from_env({"LIVECART_REPLICA_ACK_TIMEOUT_MS": "0"})
    assert Settings.from_env({"LIVECART_RECORDING_PART_S": "0"}).recording_part_s == 0
    for part_s in ("0.1", "1.5"):  # too short a part; more than half a 2 s segment
        with pytest.raises(ValueError, match="recording_part_s"):
            Settings.from_env({"LIVECART_RECORDING_PART_S": part_s})


async def test_replicated_durability_is_refused_without_replicas(tmp_path: Path) -> None:
    """The embedded Valkey has no replica: every buy would answer 503, so refuse at start."""
    settings = Settings(data_dir=tmp_path, durability="replicated")
    with pytest.raises(RuntimeError, match="replicated needs a Valkey with replicas"):
        await Services.start(settings)


def test_money_is_formatted_with_each_currency_s_minor_digits() -> None:
    from checkout.money import format_money, split_commission
    assert format_money(8900, "USD") == "89.00 USD"
    assert format_money(5, "EUR") == "0.05 EUR"
    assert format_money(12900, "JPY") == "12900 JPY"
    assert format_money(1500, "KWD") == "1.500 KWD"
    assert split_commission(333, 1250) == (41, 292)
