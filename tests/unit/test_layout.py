"""The house rules of the package layout, checked on the source itself."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "panels"
FEATURES = {
    "acl",
    "change",
    "column",
    "datasource",
    "panel",
    "view",
    "rows",
    "identity",
    "records",
    "sync",
}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_platform_imports_no_feature() -> None:
    offenders = {
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in (PACKAGE / "platform").rglob("*.py")
        for module in _imported_modules(path)
        if module.startswith("panels.") and module.split(".")[1] in FEATURES
    }
    assert not offenders, sorted(offenders)


def test_features_never_import_other_features_routes() -> None:
    offenders = {
        f"{path.relative_to(PACKAGE)} imports {module}"
        for feature in FEATURES
        for path in (PACKAGE / feature).rglob("*.py")
        for module in _imported_modules(path)
        if module.startswith("panels.")
        and module.endswith(".routes")
        and module.split(".")[1] != feature
    }
    assert not offenders, sorted(offenders)
