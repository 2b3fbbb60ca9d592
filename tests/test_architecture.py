"""The layering rule: the engine (registration, planner) runs without Qt or VTK."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_engine_imports_no_gui_toolkit():
    code = ("import pkgutil, importlib, sys, registration, planner\n"
            "for pkg in (registration, planner):\n"
            "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
            "        importlib.import_module(m.name)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PyQt5', 'vtkmodules', 'vtk', 'pyvista', 'pyvistaqt', 'gui')]\n"
            "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_import_contracts_kept():
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        exe = shutil.which("lint-imports")
    if not exe:
        pytest.skip("import-linter is not installed")
    r = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "BROKEN" not in r.stdout


PACKAGES = ("registration", "planner", "gui", "sample_data")


def test_every_module_lives_in_a_wing():
    """The top of each package holds only ``__init__.py``; every module sits in a wing
    (one subpackage per responsibility, docs/architecture.md) whose ``__init__.py``
    says in its docstring what it owns and what it may import."""
    loose = [str(p.relative_to(ROOT)) for pkg in PACKAGES for p in (ROOT / pkg).glob("*.py")
             if p.name != "__init__.py"]
    assert not loose, f"modules outside a wing: {loose}"
    for pkg in PACKAGES:
        wings = [d for d in (ROOT / pkg).iterdir() if d.is_dir() and d.name != "__pycache__"]
        assert wings, pkg
        for wing in wings:
            init = wing / "__init__.py"
            assert init.is_file(), f"{wing} is not a package"
            doc = ast.get_docstring(ast.parse(init.read_text()))
            assert doc and "import" in doc, f"{init}: the docstring must say what the wing may import"



def test_no_long_functions_in_the_engine():
    """No function in registration/ or planner/ over 80 lines, unless a comment on the
    line before its ``def`` says why (``# long: <reason>``)."""
    long = []
    for pkg in ("registration", "planner"):
        for path in (ROOT / pkg).rglob("*.py"):
            lines = path.read_text().splitlines()
            for node in ast.walk(ast.parse("\n".join(lines))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                    n = node.end_lineno - node.lineno + 1
                    if n > 80 and not lines[first - 2].strip().startswith("# long:"):
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "functions over 80 lines without a '# long:' reason: " + "; ".join(long)


def test_tests_do_not_import_each_other():
    """Shared test code lives in helper modules (tests/_helpers.py, _gui_helpers.py, ...) or
    fixtures, never in another test module: a test file can be read, run and deleted alone."""
    offenders = []
    for path in (ROOT / "tests").glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name} imports {n}" for n in names
                          if n.split(".")[-1].startswith("test_") or n.startswith("tests.test_")]
    assert not offenders, offenders
