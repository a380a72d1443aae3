"""Run the fault suite and write its figures to docs/reliability.md.

    python -m tests.faults.report          # the short forms, as CI runs them (a few minutes)
    python -m tests.faults.report --long   # the long forms: outages of one and two minutes, more kills

Needs PostgreSQL (FLOCKWATCH_TEST_PG_URL, as for the tests) and the server binaries for a private instance.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "reliability.md"

INTRO = """# Reliability: the fault suite

A follower count at a past moment can never be fetched again, so the suite runs the real daemon (`python -m service
run`, a separate process) against a fake Mastodon instance whose every answer carries a count no other answer
carries, writes down each answer it sends (the ledger), and matches the database against it sample by sample:

- **expected**: answers the daemon received; **stored**: samples in the database; **lost**: received, never stored;
  **duplicated**: a sample stored twice; **invented**: a stored count no answer carried;
- **in flight**: answers the fake sent within a second of a SIGKILL (or after it, to a request queued before it) and
  that are not stored: the daemon never read them, so they were never polled.

Target in every case: 0 lost, 0 duplicated, 0 invented, the daemon up (exit 0 on SIGTERM), the fault shown in its
metrics. The cases live in `tests/faults/` and run in CI in their short forms (`make test`); this page was written
by `{command}` on {date}.

"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--long", action="store_true", help="the long forms of the cases")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tallies = Path(folder) / "tallies.jsonl"
        env = {
            **os.environ,
            "FLOCKWATCH_FAULT_REPORT": str(tallies),
            "FLOCKWATCH_FAULTS_LONG": "1" if args.long else "0",
        }
        code = subprocess.call(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/faults"],
            cwd=ROOT,
            env=env,
        )
        rows = [json.loads(line) for line in tallies.read_text().splitlines()] if tallies.exists() else []
    command = "python -m tests.faults.report" + (" --long" if args.long else "")
    OUT.write_text(_page(rows, command, code))
    print(f"wrote {OUT} ({len(rows)} cases, pytest exit {code})")
    return code


def _page(rows: list[dict[str, object]], command: str, code: int) -> str:
    lines = [INTRO.format(command=command, date=datetime.now(UTC).strftime("%Y-%m-%d"))]
    lines.append(
        "| case | expected | stored | lost | duplicated | invented | in flight | daemon up | shown in metrics |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        lines.append(
            f"| {row['case']} | {row['expected']:,} | {row['stored']:,} | {row['lost']} | {row['duplicated']} | "
            f"{row['invented']} | {row['in_flight']} | {'yes' if row['daemon_up'] else '**no**'} | {row['shown_in_metrics']} |"
        )
    verdict = "every case passed" if code == 0 else f"**pytest exit code {code}: a case failed**"
    lines.append(f"\nResult: {verdict}.\n")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
