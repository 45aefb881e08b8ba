"""The architecture's rules (../shared/DESIGN.md), checked on the source itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sd_studio"
HEAVY = ("torch", "diffusers", "transformers", "openvino", "peft")


def _modules(folder: Path):
    return sorted(p for p in folder.rglob("*.py"))


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, (ast.If, ast.Try)) and top_level_only:
            # `try: import x` at module level still runs at import time
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import):
                    names.update(a.name for a in sub.names)
                elif isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                    names.add(sub.module)
    return names


def _root(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", _modules(PACKAGE / "document"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_document_imports_no_qt_no_torch_and_nothing_above_it(path):
    for name in _imports(path):
        assert _root(name) not in ("PySide6", "shiboken6", "qtawesome", *HEAVY), f"{path.name} imports {name}"
        assert not name.startswith(("sd_studio.ui", "sd_studio.engine", "sd_studio.cli", "sd_studio.app")), (
            f"{path.name} imports {name}: document/ must not depend on the layers above it"
        )


@pytest.mark.parametrize("path", _modules(PACKAGE / "engine"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_engine_imports_no_qt_and_torch_only_lazily(path):
    for name in _imports(path):
        assert _root(name) not in ("PySide6", "shiboken6", "qtawesome"), f"{path.name} imports {name}"
        assert not name.startswith(("sd_studio.ui", "sd_studio.cli", "sd_studio.app")), f"{path.name} imports {name}"
    for name in _imports(path, top_level_only=True):
        assert _root(name) not in HEAVY, f"{path.name} imports {name} at module level; import it inside a function"


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("cli*.py")), ids=lambda p: p.name)
def test_command_line_never_uses_widgets(path):
    for name in _imports(path):
        assert not name.startswith(("PySide6", "sd_studio.ui")), f"{path.name} imports {name}"


@pytest.mark.parametrize(
    "module",
    ["sd_studio.cli", "sd_studio.engine.generate", "sd_studio.engine.models", "sd_studio.ui.main_window"],
)
def test_importing_does_not_load_torch_or_diffusers(module):
    code = (
        f"import sys, {module}\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"importing {module} loaded {out.stdout.strip()}"


def _public_definitions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            yield node
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                        yield item


def _documented_methods() -> set[str]:
    names = set()
    for path in _modules(PACKAGE):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and ast.get_docstring(item):
                        names.add(item.name)
    return names


def test_every_module_and_public_definition_has_a_docstring():
    documented = _documented_methods()
    missing = []
    for path in _modules(PACKAGE):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if path.name != "__init__.py" and ast.get_docstring(tree) is None:
            missing.append(f"{path.relative_to(PACKAGE)} (module)")
        for node in _public_definitions(path):
            if ast.get_docstring(node) is None and not _is_override(node, documented):
                missing.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert not missing, "no docstring:\n" + "\n".join(missing)


def _is_override(node, documented: set[str]) -> bool:
    """Overrides (a method a base class documents, a Qt event handler) and property setters
    document themselves by what they override."""
    if not isinstance(node, ast.FunctionDef):
        return False
    if any(isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter") for d in node.decorator_list):
        return True
    return node.name in documented or node.name.endswith("Event") or node.name in {
        "paint", "sizeHint", "data", "rowCount", "flags", "setData", "run", "eventFilter",
    }
