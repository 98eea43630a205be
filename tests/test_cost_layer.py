"""The cost layer stands alone: it imports without genbench and without heavy libraries."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_cost_imports_without_genbench_or_torch():
    code = (
        "import sys\n"
        "sys.modules['genbench'] = None\n"  # any `import genbench...` now raises ImportError
        "import cost, cost.meter, cost.gpu, cost.prices, cost.azure, cost.hardware, cost.ledger, cost.audit, cost.cli\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'pandas', 'mlflow', 'pynvml') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_snapshots_are_declared_package_data():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'cost = ["snapshots/*.yaml"]' in pyproject
    assert (ROOT / "cost" / "snapshots" / "paper-2023.yaml").is_file()
