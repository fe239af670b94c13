"""The folders of hpt_ros are layers: a lower one never imports a higher one.

Every ``import`` and ``from ... import`` in hpt_ros/ is read with ``ast`` (function-level
imports included, relative imports resolved), so a lazy import cannot hide a dependency.
"""

from __future__ import annotations

import ast
import pathlib

from conftest import ROOT

PACKAGE = ROOT / "hpt_ros"

#: bottom to top; each may import only from itself and the layers before it.
LAYERS = ("resources", "msgs", "spec", "model", "engine", "runtime", "sim", "data", "ros", "view")
#: the middleware: imported only by the transports of hpt_ros/ros/.
MIDDLEWARE = {"rclpy": {"hpt_ros.ros.rclpy_transport"}, "cyclonedds": None}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _nodes(tree: ast.AST, runtime_only: bool):
    """Every node of ``tree``; without the bodies of ``if TYPE_CHECKING:`` when ``runtime_only``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if runtime_only and _is_type_checking(node):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def imports_of(path: pathlib.Path, runtime_only: bool = False) -> set[str]:
    """Absolute names of every module ``path`` imports (``from a import b`` gives ``a`` and ``a.b``);
    ``runtime_only``: without the imports that only type checkers run (``if TYPE_CHECKING:``)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _nodes(ast.parse(path.read_text(), filename=str(path)), runtime_only):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return found


def layer_of(name: str) -> str | None:
    """'hpt_ros.ros.dds' -> 'ros'; None outside hpt_ros or for hpt_ros itself."""
    parts = name.split(".")
    return parts[1] if parts[0] == "hpt_ros" and len(parts) > 1 else None


def _modules() -> list[pathlib.Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_import_reader_sees_relative_lazy_and_upward_imports():
    # known facts of the tree: if the reader missed them, the checks below would pass vacuously
    assert "hpt_ros.msgs.messages" in imports_of(PACKAGE / "nodes" / "policy_node.py")
    assert "hpt_ros.ros.transport" in imports_of(PACKAGE / "nodes" / "policy_node.py")
    assert "hpt_ros.msgs.idl.cdr" in imports_of(PACKAGE / "msgs" / "idl" / "registry.py")  # from . import cdr
    assert "hpt_ros.msgs.names" in imports_of(PACKAGE / "msgs" / "idl" / "registry.py")  # from ..names import
    assert "hpt_ros.msgs.names" in imports_of(PACKAGE / "spec" / "loader.py")  # inside a function
    assert layer_of("hpt_ros.ros.dds") == "ros" and layer_of("hpt_ros") is None and layer_of("numpy") is None


def test_no_lower_layer_imports_a_higher_one():
    rank = {name: i for i, name in enumerate(LAYERS)}
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    missing = set(LAYERS) - folders - modules
    assert not missing, f"layers named in LAYERS but not in hpt_ros/: {sorted(missing)}"
    wrong = []
    for path in _modules():
        own = layer_of(_module_name(path))
        if own not in rank:
            continue
        for name in sorted(imports_of(path)):
            other = layer_of(name)
            if other is not None and other != own and rank.get(other, len(LAYERS)) > rank[own]:
                wrong.append(f"{path.relative_to(ROOT)} ({own}) imports {name} ({other})")
    assert not wrong, "lower layers importing higher ones:\n" + "\n".join(wrong)


def import_graph() -> dict[str, set[str]]:
    """module -> the hpt_ros modules it imports at run time (lazy imports included). A module's
    import of its own package's ``__init__`` is left out: Python runs that first anyway."""
    modules = {_module_name(p): p for p in _modules()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for imported in imports_of(path, runtime_only=True):
            while imported and imported not in modules:  # ``from a import b``: b may be a name in a
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not name.startswith(imported + "."):
                deps.add(imported)
        graph[name] = deps
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


def test_the_circle_finder_finds_a_circle_and_its_members_only():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert import_circles(graph) == [["a", "b", "c"]]
    assert import_circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    graph = import_graph()
    assert "hpt_ros.engine.model_check" in graph["hpt_ros.engine.export"]  # the reader sees lazy imports
    circles = import_circles(graph)
    assert not circles, "modules importing each other (lazy imports included):\n" + "\n".join(
        " <-> ".join(c) for c in circles)


def test_message_conversion_below_data_imports_no_transport_or_node():
    forbidden = ("hpt_ros.ros", "hpt_ros.nodes", "hpt_ros.view")
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for folder in ("msgs", "spec", "model", "engine", "runtime", "sim", "data")
        for path in sorted((PACKAGE / folder).rglob("*.py"))
        for name in sorted(imports_of(path))
        if name in forbidden or name.startswith(tuple(f + "." for f in forbidden))
    ]
    assert not wrong, "\n".join(wrong)


def test_middleware_is_imported_by_the_transports_only():
    users: dict[str, set[str]] = {root: set() for root in MIDDLEWARE}
    for path in _modules():
        for name in imports_of(path):
            root = name.split(".")[0]
            if root in users:
                users[root].add(_module_name(path))
    assert users["rclpy"] == MIDDLEWARE["rclpy"], sorted(users["rclpy"])
    # cyclonedds: the dds transport, and the IDL struct types of msgs/idl (cyclonedds.idl, no DDS entity)
    outside = sorted(m for m in users["cyclonedds"]
                     if not m.startswith(("hpt_ros.ros.dds", "hpt_ros.ros._dds_binding", "hpt_ros.msgs.idl")))
    assert not outside, f"cyclonedds imported outside the dds transport and msgs/idl: {outside}"
    idl_entities = sorted(
        f"{_module_name(p)}: {name}" for p in (PACKAGE / "msgs").rglob("*.py") for name in imports_of(p)
        if name.startswith("cyclonedds.") and not name.startswith("cyclonedds.idl")
    )
    assert not idl_entities, f"msgs/ imports DDS entities, not only IDL types: {idl_entities}"
