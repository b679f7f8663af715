"""The layers: web_ui -> appliance -> firmware, no cycle inside appliance/, no engine in the web process."""
import ast
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("firmware", "appliance", "web_ui")
# What the web process must never load: the engine, and through it every line driver and pjsua2.
ENGINE_ONLY = ("pjsua2", "appliance.engine", "firmware.sip")
# What each layer must not import: calls go only downward.
FORBIDDEN = {"firmware": ("appliance", "web_ui"), "appliance": ("web_ui",), "web_ui": ("appliance.engine",)}
# The one exception: the ``hotline`` command starts every process, so ``hotline web`` imports
# web_ui, inside its function only (importing appliance.cli loads no web_ui).
LAUNCHERS = {"appliance.cli": ("web_ui",)}

CREATE_APP = """
import json, sys
import web_ui
web_ui.create_app({"DATA_DIR": sys.argv[1]})
print(json.dumps(sorted(sys.modules)))
"""
# `hotline web` as appliance.cli runs it, up to the point where waitress would serve the app.
HOTLINE_WEB = """
import json, sys
import waitress
served = []
waitress.serve = lambda app, **options: served.append(app)
from appliance import cli
assert cli.main(["web", "--data", sys.argv[1], "--port", "0"]) == 0 and served
print(json.dumps(sorted(sys.modules)))
"""


# --- the web process at run time ---------------------------------------------------------------


@pytest.mark.parametrize("program", [CREATE_APP, HOTLINE_WEB], ids=["create_app", "hotline-web"])
def test_the_web_process_never_loads_the_engine_or_pjsua2(tmp_path, program):
    done = subprocess.run([sys.executable, "-c", program, str(tmp_path / "data")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "web_ui" in loaded
    assert [name for name in ENGINE_ONLY if name in loaded] == []


# --- the import direction, read from the source ------------------------------------------------


def modules():
    """{dotted module name: file path} of every module of the three packages."""
    found = {}
    for package in PACKAGES:
        for folder, _dirs, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    found[dotted.removesuffix(".__init__")] = path
    return found


def _is_package(name, known):
    """True when ``name`` is a package (has submodules among ``known``)."""
    return any(other.startswith(name + ".") for other in known)


def _type_checking_only(node, parents):
    """True for an import inside ``if TYPE_CHECKING:`` (it never runs)."""
    for parent in parents.get(node, ()):
        if isinstance(parent, ast.If):
            test = parent.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING" and node in _walk_body(parent.body):
                return True
    return False


def _walk_body(body):
    """Every node inside the statements ``body``."""
    return {inner for statement in body for inner in ast.walk(statement)}


def _ancestors(tree):
    """{node: [its ancestors]} of ``tree``."""
    ancestors = {}

    def visit(node, chain):
        ancestors[node] = chain
        for child in ast.iter_child_nodes(node):
            visit(child, chain + [node])
    visit(tree, [])
    return ancestors


def imports_of(name, path, known, top_level_only=False):
    """The modules ``name`` imports anywhere in its file (module level and inside functions)."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    parents = _ancestors(tree)
    package = name if _is_package(name, known) or path.endswith("__init__.py") else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or _type_checking_only(node, parents):
            continue
        if top_level_only and any(isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                                  for parent in parents[node]):
            continue
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
            base = ".".join(anchor + ([base] if base else []))
        targets.add(base)
        # `from . import journal`, `from appliance import schedule`: the names may be modules themselves.
        targets.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known)
    return targets


def import_graph():
    """{module: modules of the three packages it imports}."""
    known = modules()
    return {name: {target for target in imports_of(name, path, known) if target in known and target != name}
            for name, path in known.items()}, known


def _within(target, package):
    return target == package or target.startswith(package + ".")


def test_imports_go_only_downward():
    graph, known = import_graph()
    wrong = []
    for name, path in sorted(known.items()):
        layer = name.split(".")[0]
        for target in sorted(imports_of(name, path, known)):
            if any(_within(target, forbidden) for forbidden in FORBIDDEN.get(layer, ())):
                if not any(_within(target, allowed) for allowed in LAUNCHERS.get(name, ())):
                    wrong.append(f"{name} imports {target}")
    assert wrong == []
    assert {"firmware.at", "appliance.config", "web_ui.api"} <= set(graph)  # the walk found the packages


def test_the_launcher_imports_the_web_ui_only_inside_its_command():
    known = modules()
    for name, allowed in LAUNCHERS.items():
        top = imports_of(name, known[name], known, top_level_only=True)
        assert [target for target in sorted(top) if any(_within(target, other) for other in allowed)] == []


def strongly_connected(graph):
    """Tarjan's strongly connected components of ``graph`` ({node: successors}), as sorted lists."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []

    def connect(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    recursion = sys.getrecursionlimit()
    sys.setrecursionlimit(max(recursion, 10 * len(graph) + 100))
    try:
        for node in sorted(graph):
            if node not in index:
                connect(node)
    finally:
        sys.setrecursionlimit(recursion)
    return components


def test_strongly_connected_finds_a_cycle_and_nothing_else():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert sorted(strongly_connected(graph)) == [["a", "b", "c"], ["d"], ["e"]]


def test_no_import_cycle_inside_appliance():
    graph, _known = import_graph()
    inside = {name: {target for target in targets if _within(target, "appliance")}
              for name, targets in graph.items() if _within(name, "appliance")}
    cycles = [component for component in strongly_connected(inside) if len(component) > 1]
    assert cycles == [], "import cycles in appliance/ (module or function level): " + "; ".join(
        " <-> ".join(component) for component in cycles)
