"""pyfim's FP-growth/Apriori on integer baskets, importable on its own.

Kept apart from :mod:`analytics.rules` (pandas, SQLAlchemy, SciPy) because the app mines in a child process
that it can stop after a time limit (C code cannot be interrupted in-process): the child runs this module
alone, so it starts in tens of milliseconds instead of spending a second importing the analytics stack on every
mining run (a mining run of the 50,000-member demo: 1.06 s before, 0.08 s now). It takes and returns plain values.
"""

from __future__ import annotations

import pickle
import sys


def pyfim_rules(tracts: list[list[int]], algorithm: str, min_support: float, min_confidence: float,
                max_len: int) -> list[tuple]:
    """Rules ``(head, body, count of both, count of body, count of head, confidence)`` of ``tracts``."""
    import fim

    miner = fim.fpgrowth if algorithm == "fpgrowth" else fim.apriori
    # supp/conf in percent; mode 'o': a rule's support is that of body and head together.
    return miner(tracts, target="r", supp=min_support * 100, conf=min_confidence * 100, zmin=2,
                 zmax=max_len, report="abhc", mode="o")


def _child_main() -> None:  # pragma: no cover - runs in the child of rules._mine_with_time_limit
    arguments = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(pickle.dumps(pyfim_rules(*arguments)))


if __name__ == "__main__":
    _child_main()
