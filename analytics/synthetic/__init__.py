"""The demo warehouse generator: a believable shop, deterministic per seed.

``python -m analytics.synthetic --members 50000 --seed 42 --url duckdb:///data/warehouse.duckdb``
"""

from analytics.synthetic.build import (
    DEFAULT_END,
    DEFAULT_MEMBERS,
    DEFAULT_SEED,
    MAX_MEMBERS,
    BuildSummary,
    DemoSpec,
    demo_personas,
    generate_warehouse,
)

__all__ = [
    "DEFAULT_END", "DEFAULT_MEMBERS", "DEFAULT_SEED", "MAX_MEMBERS", "BuildSummary", "DemoSpec",
    "demo_personas", "generate_warehouse",
]
