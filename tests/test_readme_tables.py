"""The README's benchmark tables are the committed results: the block between the BENCHMARKS
markers is exactly what ``benchmarks/readme_tables.py`` renders from ``benchmarks/results``."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_tables():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "benchmarks" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_benchmark_block_is_rendered_from_the_committed_results():
    tables = _readme_tables()
    readme = (ROOT / "README.md").read_text()
    assert readme.count(tables.START) == 1 and readme.count(tables.END) == 1
    block = readme.split(tables.START, 1)[1].split(tables.END, 1)[0]
    assert block.strip() == tables.render().strip(), (
        "README.md's benchmark tables differ from benchmarks/results/*.json: run `python benchmarks/readme_tables.py`"
    )
    assert "| shared |" in block and "Memory against workers" in block, "the block holds the benchmark tables"
