"""Run every benchmark: ``python -m benchmarks [--quick]``.

``--quick`` runs short versions (under a minute in all) that only check that each benchmark
works; CI runs them. The full run takes several minutes and writes JSON results to
benchmarks/results/ and its figures to docs/images/ (the quick run's go to
benchmarks/results/; see benchmarks/plots.py).
"""

from __future__ import annotations

import argparse
import asyncio

from . import budget, freshness, idle, overhead, scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs that check they work")
    args = parser.parse_args()
    overhead.report(asyncio.run(overhead.run(args.quick)), args.quick)
    scale.main(["--sweep", "--quick"] if args.quick else ["--sweep"])
    idle.main(["--quick"] if args.quick else [])
    freshness.main(["--quick"] if args.quick else [])
    budget.main(["--quick"] if args.quick else [])


if __name__ == "__main__":
    main()
