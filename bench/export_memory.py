"""Run one export in a fresh process and print its peak memory (for bench/run.py)."""

from __future__ import annotations

import sys
from functools import partial

from app import ballots
from app.db import Database
from app.exports import export_stream
from app.queries import consultation_by_slug
from app.reporting import build_report, wordings
from app.tallies import ballot_rows


def _kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def main(url: str, fmt: str) -> None:
    # A forked child starts with its parent's high-water mark; start counting afresh here.
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    database = Database(url)
    before = _kb("VmRSS")
    written = 0
    with database.session() as session, open("/dev/null", "wb") as sink:
        consultation = consultation_by_slug(session, "bench", include_drafts=True)
        if fmt == "ballots":
            chunks = ballots.csv_lines(ballot_rows(session, consultation))
        else:
            chunks = export_stream(
                build_report(session, consultation),
                fmt,
                None,
                wordings=partial(wordings, session),
            )
        for chunk in chunks:
            sink.write(chunk)
            written += len(chunk)
    peak = _kb("VmHWM")
    print(f"{before} {peak} {written}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
