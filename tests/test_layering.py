"""The package's layout: stages import only downward, and the overview lists every module."""

from __future__ import annotations

import ast
from pathlib import Path

import massive_activations

PACKAGE = Path(massive_activations.__file__).parent
SHARED = "shared"


def _modules() -> dict[str, Path]:
    """``{dotted module name: path}`` of every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _stage(module: str) -> str:
    """The stage of a dotted module: its subpackage, or "shared" for top-level modules."""
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        stage = parts[1]
        return stage if stage in massive_activations.STAGES else SHARED  # reference/ is shared
    return SHARED


def _imports(path: Path, module: str) -> set[str]:
    """Every massive_activations module ``path`` imports, at top level or inside functions."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] == "massive_activations" and m in _modules()}


def test_every_module_has_a_known_stage():
    stages = set(massive_activations.STAGES)
    for module in _modules():
        assert _stage(module) in stages, module


def test_no_module_imports_from_a_later_stage():
    order = {s: i for i, s in enumerate(massive_activations.STAGES)}
    upward = []
    for module, path in _modules().items():
        if module == "massive_activations":
            continue  # the top level re-exports every stage's entry points (lazily)
        for imported in _imports(path, module):
            if order[_stage(imported)] > order[_stage(module)]:
                upward.append(f"{module} imports {imported}")
    assert upward == []


def test_the_layering_check_catches_an_upward_import(tmp_path):
    """The check itself: a measurement module importing fitting is found."""
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from massive_activations.fitting import fit_all\n")
    imported = _imports(path, "massive_activations.measurement.bad")
    assert "massive_activations.fitting.fit_all" in imported
    assert _stage("massive_activations.fitting.fit_all") == "fitting"
    assert _stage("massive_activations.curve") == SHARED


def test_the_overview_lists_every_module():
    doc = massive_activations.__doc__
    for module in _modules():
        short = module.removeprefix("massive_activations").lstrip(".")
        if not short or short.endswith("__main__"):
            continue
        assert short in doc, f"{short} is missing from the overview in __init__.py"


def test_entry_points_resolve():
    for name in massive_activations.__all__:
        assert callable(getattr(massive_activations, name)) or name in ("STAGES", "__version__")


def test_no_module_is_over_600_lines():
    long = {m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}
