"""
The import graph of the wsrelay package, read from the source with `ast`
(every import, those inside functions included): no cycles; the data path
never imports the process layer or the admin; selector strategies are reached
only through wsrelay/interfaces.py (by their plugins), never imported by name.
docs/architecture.md draws the same layers.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "wsrelay"

# The path a frame and a request take, client leg to origin leg, and what it shares.
DATA_PATH = ("wsrelay.edge", "wsrelay.origins", "wsrelay.tls", "wsrelay.hosts")
# Running the relay as a process (the service tree, signals, workers, systemd), and the admin API.
PROCESS = "wsrelay.process"
ADMIN = "wsrelay.admin"
# The selector strategies: reached through ISelectorFactory plugins (twisted/plugins), not by import.
STRATEGIES = "wsrelay.selectors."


def within(name, *packages):
    return any(name == p or name.startswith(p + ".") for p in packages)


def modules(package=PACKAGE):
    """{dotted name: path} of every module under `package`."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name, path, known):
    """The wsrelay modules `name` imports (a `from package import submodule` names the submodule)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph(package=PACKAGE):
    known = modules(package)
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def reachable(edges, start):
    seen, todo = set(), [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_layers_name_packages_that_exist():
    known = set(modules())
    assert set(DATA_PATH) <= known and PROCESS in known and ADMIN in known


def test_there_is_no_import_cycle():
    assert cycles(graph()) == []


def test_the_data_path_never_imports_the_process_layer_or_the_admin():
    edges = graph()
    data_path = [name for name in edges if within(name, *DATA_PATH)]
    assert len(data_path) > 20
    for name in sorted(data_path):
        bad = sorted(m for m in reachable(edges, name) if within(m, PROCESS, ADMIN))
        assert not bad, f"{name} imports (directly or not) {', '.join(bad)}"


def test_strategies_are_reached_only_through_the_interfaces():
    for name, targets in graph().items():
        if not name.startswith(STRATEGIES):
            strategies = sorted(t for t in targets if t.startswith(STRATEGIES))
            assert not strategies, f"{name} imports the strategy {', '.join(strategies)}: use wsrelay.interfaces"
    for name, targets in graph().items():
        if name.startswith(STRATEGIES) and name != STRATEGIES + "builtin":
            assert not {t for t in targets if not t.startswith("wsrelay.selectors") and t != "wsrelay.interfaces"}, \
                f"{name} imports more than wsrelay.interfaces and its own package"


def test_the_graph_finds_a_cycle_and_a_layer_breach(tmp_path):
    """The checks above can fail: a planted cycle and a data-path module importing the service are found."""
    package = tmp_path / "wsrelay"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for sub in ("edge", "process"):
        (package / sub).mkdir()
        (package / sub / "__init__.py").write_text("")
    (package / "edge" / "legs.py").write_text("from wsrelay.edge import session\n")
    (package / "edge" / "session.py").write_text("def f():\n    from .legs import x\n")
    (package / "edge" / "frames.py").write_text("import wsrelay.process.service\n")
    (package / "process" / "service.py").write_text("")
    edges = graph(package)
    assert cycles(edges) == [["wsrelay.edge.legs", "wsrelay.edge.session"]]
    assert "wsrelay.process.service" in reachable(edges, "wsrelay.edge.frames")


MAX_LINES = 500


def test_every_module_is_short_and_says_why_it_exists():
    """No module over 500 lines; each opens with a docstring (why it exists)."""
    for name, path in modules().items():
        text = path.read_text()
        assert len(text.splitlines()) <= MAX_LINES, f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines"
        assert ast.get_docstring(ast.parse(text)), f"{path.relative_to(ROOT)} has no docstring"
