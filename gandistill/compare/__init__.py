"""``gandistill compare``: the paper's tables as data, presets with SnS's settings, runs, reports.

>>> from gandistill.compare import CompareConfig, compare, get_table
>>> [r.key for r in get_table(5).rows]
['a', 'b', 'c', 'd', 'e', 'f']

``compare(CompareConfig(table=1, preset="digits"))`` trains and probes every row of Table 1 on the
embedded preset (results under ``runs/compare-digits``); ``gandistill compare --table 1`` is the CLI.
"""
from gandistill.compare.presets import PRESETS, Preset, ProbeSpec, get_preset, resolve
from gandistill.compare.runner import CompareConfig, CompareResult, RowResult, compare
from gandistill.compare.tables import RUNS, TABLES, RowSpec, RunSpec, TableSpec, get_table

__all__ = ["CompareConfig", "CompareResult", "RowResult", "compare", "PRESETS", "Preset", "ProbeSpec", "get_preset",
           "resolve", "RUNS", "TABLES", "RowSpec", "RunSpec", "TableSpec", "get_table"]
