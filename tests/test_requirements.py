"""The app pins what it was tested with: requirements.txt names every direct dependency at the
exact version installed here (CI installs from it), generated from requirements.in."""
import ast
import importlib.metadata
import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import update_pins  # noqa: E402

APP_CODE = [ROOT / "app.py", *sorted((ROOT / "engine").rglob("*.py")), *sorted((ROOT / "ui").glob("*.py")),
            *sorted((ROOT / "pages").glob("*.py"))]
OWN = {"engine", "ui", "pages", "tests", "bench"}
# optional, named in requirements-dev.in (the tests use them) and in the README: `--data hfds/NAME`
# needs datasets, `sweep --ray` needs ray
OPTIONAL = {"datasets", "ray"}


def _imported_top_level(paths) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in OWN and n not in sys.stdlib_module_names}


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def test_every_third_party_import_of_the_app_is_a_named_requirement():
    provided = importlib.metadata.packages_distributions()
    named = {_normal(n) for n in update_pins.direct_dependencies(ROOT / "requirements.in")}
    missing = {}
    for module in _imported_top_level(APP_CODE) - OPTIONAL:
        distributions = {_normal(d) for d in provided.get(module, [module])}
        if not distributions & named:
            missing[module] = sorted(distributions)
    assert not missing, f"imported but not in requirements.in: {missing}"
    dev = {_normal(n) for n in update_pins.direct_dependencies(ROOT / "requirements-dev.in")}
    assert OPTIONAL <= dev  # optional at run time, installed for the tests


@pytest.mark.parametrize("source, target, header", [
    ("requirements.in", "requirements.txt", None),
    ("requirements-dev.in", "requirements-dev.txt", "-r requirements.txt")])
def test_pins_are_exact_and_match_what_is_installed(source, target, header):
    written = (ROOT / target).read_text()
    assert written == update_pins.pinned(ROOT / source, header), (
        f"{target} is out of date with {source} or with the installed packages: run "
        "`python tools/update_pins.py` and then the tests")
    pins = [line for line in written.splitlines() if line and not line.startswith(("#", "-r"))]
    assert pins and all("==" in line and ">" not in line and "<" not in line for line in pins)
