"""The tree shows the layers (DESIGN.md): data flows Hub → catalog → measure → store → analysis → page,
and imports point only downward, with no circle inside a package (engine or ui) and no module too big
for one reader to hold in mind. Checked on the source, lazy imports included."""
import ast
from pathlib import Path

from engine.paths import ENGINE_DIR

# A module may import its own layer or a lower one; measure and analysis sit side by side.
RANKS = {"engine": 0, "engine.store": 1, "engine.catalog": 2, "engine.measure": 3, "engine.analysis": 3,
         "engine.jobs": 4, "engine.cli": 5}
OUTSIDE = ("ui", "pages", "streamlit")  # the engine never imports these
ROOT = ENGINE_DIR.parent
MAX_LINES = 650  # past this a module is split by concern (its own commit, behaviour unchanged)


def package_modules(package: Path) -> dict[str, Path]:
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def engine_modules() -> dict[str, Path]:
    return package_modules(ENGINE_DIR)


def ui_modules() -> dict[str, Path]:
    return package_modules(ROOT / "ui")


def oversized(paths: list[Path]) -> list[str]:
    """Each file over MAX_LINES lines, with its length."""
    lengths = {path: len(path.read_text().splitlines()) for path in paths}
    return sorted(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}: {n} lines"
                  for path, n in lengths.items() if n > MAX_LINES)


def source_files() -> list[Path]:
    return [*ENGINE_DIR.rglob("*.py"), *(ROOT / "ui").rglob("*.py"), *(ROOT / "pages").glob("*.py"), ROOT / "app.py"]


def layer(module: str) -> str:
    """`engine` holds the foundation (errors, options, intervals, paths); `python -m engine` is the CLI."""
    if module == "engine.__main__":
        return "engine.cli"
    return next(name for name in sorted(RANKS, key=len, reverse=True)
                if module == name or module.startswith(name + "."))


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every engine (or UI) module a file imports, anywhere in it; `from pkg import sub` is the submodule."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] in ("engine", *OUTSIDE)}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = node.module.split(".")[0]
            if top in OUTSIDE and top != "ui":
                found.add(node.module)
            elif top in ("engine", "ui"):
                found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                          for a in node.names}
    return found


def upward_imports(modules: dict[str, Path]) -> list[str]:
    wrong = []
    for name, path in modules.items():
        for target in imports_of(path, modules):
            if target.split(".")[0] in OUTSIDE:
                wrong.append(f"{name} imports {target} (the engine has no UI)")
            elif layer(target) != layer(name) and RANKS[layer(target)] >= RANKS[layer(name)]:
                wrong.append(f"{name} ({layer(name)}) imports {target} ({layer(target)})")
    return sorted(wrong)


def import_cycles(modules: dict[str, Path]) -> list[str]:
    graph = {name: sorted(t for t in imports_of(path, modules) if t in modules and t != name)
             for name, path in modules.items()}
    state, cycles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycles.append(" → ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_no_module_imports_a_higher_layer_or_the_ui():
    assert upward_imports(engine_modules()) == []


def test_no_import_cycles_in_the_engine_or_the_ui():
    assert import_cycles({**engine_modules(), **ui_modules()}) == []


def test_no_module_is_too_big_to_hold_in_mind():
    assert oversized(source_files()) == []


def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path):
    """The checks themselves, on planted modules: a catalog module importing a measurement inside a
    function, a page import, and two measure modules importing each other."""
    planted = {"engine.catalog.bad": "def f():\n    from engine.measure import evaluate\n",
               "engine.measure.a": "from engine.measure import b\nimport ui.widgets\n",
               "engine.measure.b": "from engine.measure.a import x\n"}
    modules = dict(engine_modules())
    for name, code in planted.items():
        (tmp_path / f"{name}.py").write_text(code)
        modules[name] = tmp_path / f"{name}.py"
    assert upward_imports(modules) == [
        "engine.catalog.bad (engine.catalog) imports engine.measure.evaluate (engine.measure)",
        "engine.measure.a imports ui.widgets (the engine has no UI)"]
    assert import_cycles(modules) == ["engine.measure.a → engine.measure.b → engine.measure.a"]


def test_the_checks_catch_a_ui_circle_and_a_module_too_big(tmp_path):
    """A loaders module importing the widgets that import it (inside a function, too), and a
    module one line over the limit next to one at it."""
    planted = {"ui.planted_loaders": "def f():\n    from ui.planted_widgets import literal\n",
               "ui.planted_widgets": "from ui import planted_loaders, tables\n"}
    modules = dict(ui_modules())
    for name, code in planted.items():
        (tmp_path / f"{name}.py").write_text(code)
        modules[name] = tmp_path / f"{name}.py"
    assert import_cycles(modules) == ["ui.planted_loaders → ui.planted_widgets → ui.planted_loaders"]
    (tmp_path / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "fits.py").write_text("x = 1\n" * MAX_LINES)
    assert oversized([tmp_path / "long.py", tmp_path / "fits.py"]) == [f"long.py: {MAX_LINES + 1} lines"]
