"""HTTP endpoints of the creator studio: earnings per show, brand and product, a month's
statement as CSV, and a publish token for OBS.

A creator reads only its own (an operator anyone's); docs/affiliates.md has the rules.
"""

from __future__ import annotations

import calendar
from typing import Annotated, Any

from pydantic import StringConstraints
from starlette.responses import Response

from checkout.ids import CreatorId
from checkout.statements import earnings_breakdown, statement_csv
from live.accounts.auth import Role
from live.web.api import Api, Call, Param, json_response
from live.web.problems import Problem

__all__ = ["register", "MONTH"]

MONTH = Param("month", "query", Annotated[str, StringConstraints(
    pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")])


def _creator(call: Call[Any]) -> CreatorId:
    """The path's creator, if the caller acts for it (itself, or an operator)."""
    creator = CreatorId(call.param("creator"))
    if not call.need_principal().can_act_for_creator(creator):
        raise Problem(403, "forbidden", "a creator reads and acts only for itself")
    return creator


def _month_range(month: str) -> tuple[int, int]:
    """[first ms, first ms of the next month) of `YYYY-MM`, UTC."""
    year, mon = int(month[:4]), int(month[5:])
    start = calendar.timegm((year, mon, 1, 0, 0, 0))
    end = calendar.timegm((year + mon // 12, mon % 12 + 1, 1, 0, 0, 0))
    return start * 1000, end * 1000


def register(api: Api) -> None:
    _register_earnings(api)

    @api.endpoint("POST", "/creators/{creator}/publish-token",
                  summary="A creator token for OBS's WHIP output (publish_token_ttl_s)",
                  tag="video", roles=(Role.CREATOR,), status=201)
    async def publish_token(call: Call[Any]) -> Response:
        creator = _creator(call)
        ttl = call.services.settings.publish_token_ttl_s
        token = call.services.tokens.mint(Role.CREATOR, creator, ttl_s=ttl)
        return json_response({"token": token, "expires_in_s": ttl}, 201)


def _register_earnings(api: Api) -> None:
    @api.endpoint("GET", "/creators/{creator}/earnings/breakdown",
                  summary="Commission per show, per brand and per product (net of refunds)",
                  tag="reports", roles=(Role.CREATOR, Role.OPERATOR))
    async def earnings_by(call: Call[Any]) -> Response:
        creator = _creator(call)
        return json_response(await earnings_breakdown(call.services.client, creator))

    @api.endpoint("GET", "/creators/{creator}/statement",
                  summary="A month's statement (UTC) as CSV: every ledger entry, then totals "
                          "per currency", tag="reports", roles=(Role.CREATOR, Role.OPERATOR),
                  params=(MONTH,), response_media="text/csv")
    async def statement(call: Call[Any]) -> Response:
        creator = _creator(call)
        month = call.param(MONTH.name)
        start, end = _month_range(month)
        body = await statement_csv(call.services.client, creator, start, end,
                                   call.services.settings.statement_max_rows)
        return Response(body, media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="statement-{creator}-{month}.csv"',
            "Cache-Control": "no-store"})

