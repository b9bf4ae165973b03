"""The auction load test's report: its invariants (each must hold: the exit status) and a
rich table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from loadtest.report import closing_rows, mark, report_console

__all__ = ["auction_verdicts", "exact", "print_auction_report"]


def auction_verdicts(report: dict[str, Any]) -> dict[str, bool]:
    c = report["checks"]
    viewers = {} if "viewers_seen" not in report else {
        # every viewer is shown the final bid count, and every sampled bid reached them all
        "viewers_shown_final_bid": report["viewers_caught_up_s"] is not None
        and report["bid_to_screen"]["missed_pairs"] == 0}
    return {**viewers,
        "every_bid_answered": report["unresolved"] == 0,
        "no_lost_acknowledged": c["lost_acknowledged"] == 0,
        "no_unacknowledged_accepted": c["accepted_not_acknowledged"] == 0
        and c["auction_bids"] == c["acknowledged"],
        "none_accepted_after_deadline": c["accepted_after_deadline"] == 0
        and c["sent_after_deadline_and_accepted"] == 0,
        "none_refused_before_deadline": c["refused_closed_before_deadline"] == 0,
        "model_agrees": c["model_disagreements"] == 0,
        "price_matches": bool(c["price_matches"]),
        "winner_matches": bool(c["winner_matches"]),
        "closed": report["final"]["state"] == "closed",
    }


def exact(report: dict[str, Any]) -> bool:
    return all(auction_verdicts(report).values())


def _lat(lat: dict[str, Any]) -> str:
    return f"{lat['p50']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f}"


def print_auction_report(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or report_console()
    v = auction_verdicts(report)
    c, final, main = report["checks"], report["final"], report["main"]
    table = Table(title=f"auction: {report['bidders']:,} bidders at {report['bid_rate']:,.0f} "
                        f"bids/s, {report['duration_s']} s (extend {report['extend_s']} s), "
                        f"{report['viewers']:,} viewers"
                        + (", Valkey kill -9" if report["kill_valkey"] else ""))
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target")
    rows = [
        ("bids sent / seconds", f"{report['bids_sent']:,} / {report['bid_seconds']:.1f}", ""),
        ("answered per s (the node's pace)", f"{report['answered_per_s']:,.0f}", ""),
        ("main phase: accepted / refused per s",
         f"{main['accepted_per_s']:,.0f} / {main['refused_per_s']:,.0f}", ""),
        ("replies", ", ".join(f"{k}: {n:,}" for k, n in report["outcomes"].items()), ""),
        ("bid ack p50 / p99 / max (ms), all", _lat(report["latency_ms"]), ""),
        ("  201s only", _lat(report["latency_ms_201"]), ""),
        ("acknowledged (201) / the auction's bids",
         f"{c['acknowledged']:,} / {c['auction_bids']:,}", mark(v["no_unacknowledged_accepted"])),
        ("bids never answered", str(report["unresolved"]), f"0 {mark(v['every_bid_answered'])}"),
        ("acknowledged bids lost (not in the bid log)", str(c["lost_acknowledged"]),
         f"0 {mark(v['no_lost_acknowledged'])}"),
        ("accepted at/after the final deadline (server / sent)",
         f"{c['accepted_after_deadline']} / {c['sent_after_deadline_and_accepted']}",
         f"0 {mark(v['none_accepted_after_deadline'])}"),
        ("refused `closed` before it (at most ms before)",
         f"{c['refused_closed_before_deadline']} ({c.get('refused_closed_earliest_ms', 0):,})",
         f"0 {mark(v['none_refused_before_deadline'])}"),
        ("model replay: replies it disagrees with", str(c["model_disagreements"]),
         f"0 {mark(v['model_agrees'])}"),
        ("final price: server / model", f"{c['final_price_minor']:,} / {c['model_price_minor']:,}",
         mark(v["price_matches"])),
        ("winner paddle: server / model", f"{c['final_paddle']} / {c['model_paddle']}",
         mark(v["winner_matches"])),
        ("clock extended by", f"{report['extended_s']:.2f} s", ""),
        ("state", str(final["state"]), mark(v["closed"])),
        ("client retries", str(report["retries"] or "-"), ""),
    ]
    for kill in report["kills"]:
        rows.append(("Valkey kill -9", f"at {kill['at_s']:.2f} s, {kill['acked_before']:,} "
                                       f"acked before; back in {kill['back_after_s']:.2f} s", ""))
    seen = report.get("viewers_seen")
    if seen is not None:
        frames = seen["hub_frames"]
        rows.append(("viewers connected", f"{report['connect']['ready']:,}", ""))
        rows.append(("viewers: gaps / duplicates / behind (seq, bids) / gave up",
                     f"{seen['gaps']} / {seen['duplicates']} / {seen['viewers_behind_seq']}, "
                     f"{seen.get('viewers_behind_auction', 0)} / {seen['viewers_gave_up']}",
                     "reported"))
        caught = report.get("viewers_caught_up_s")
        rows.append(("viewers shown the final bid, after the close",
                     "no (stalled)" if caught is None else f"{caught:.1f} s",
                     mark(v["viewers_shown_final_bid"])))
        ready = max(1, report["connect"]["ready"])
        rows.append(("viewers: state frames (per viewer)", f"{frames.get('state', 0):,}"
                     f" ({frames.get('state', 0) / ready:,.0f})", ""))
        screen = report.get("bid_to_screen")
        if screen:
            rows.append(("bid to screen p50 / p99 / max (viewer x bid)",
                         f"{screen['p50_ms']:,.0f} / {screen['p99_ms']:,.0f} / "
                         f"{screen['max_ms']:,.0f} ms ({screen['pairs']:,} pairs, "
                         f"{screen['missed_pairs']:,} missed)", "reported"))
    bare = report.get("bare")
    if bare:
        rows.append(("bare starlette (closed loop, req/s)", f"{bare['per_s']:,.0f}", ""))
        rows.append(("bids answered per s / bare", f"{report['answered_vs_bare']:.2f}", ""))
    rows += closing_rows(report, [])[1:]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for example in c["model_examples"]:
        console.print(f"[red]model[/] {example}")
