"""The dependency rule of docs/architecture.md, checked on every import in the source (function-level ones too):

    medledger  <-  indexer  <-  node  <-  workflows/*  <-  assembly

``portal`` holds the web portal's built pages and imports nothing: the node's ``portal`` module and the auditor's
service both read its files.

``clients/`` (and the web portal) reach nodes over HTTP only: they import ``medledger`` and ``indexer`` (the
auditor follows the chain itself), never ``node``, ``workflows`` or ``assembly``. A workflow imports the node
only through its public module interface ``node.modules`` and never another workflow. ``node`` never imports
``workflows``: it finds them through entry points.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("portal", "medledger", "indexer", "node", "workflows", "clients", "assembly")
#: What each package may import of the project's packages (itself included).
ALLOWED = {
    "portal": {"portal"},
    "medledger": {"medledger"},
    "indexer": {"medledger", "indexer"},
    "node": {"portal", "medledger", "indexer", "node"},
    "workflows": {"medledger", "indexer", "node", "workflows"},
    "clients": {"portal", "medledger", "indexer", "clients"},
    "assembly": set(PACKAGES),
}
#: The node's public interface for workflows.
NODE_INTERFACE = "node.modules"


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.imported}: {self.rule}"


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                parts = module.split(".")
                base = parts if is_package else parts[:-1]
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((node.lineno, name))
    return out


def check_tree(root: Path) -> list[Violation]:
    violations = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            is_package = path.name == "__init__.py"
            module = ".".join(rel.with_suffix("").parts[:-1] if is_package else rel.with_suffix("").parts)
            tree = ast.parse(path.read_text(encoding="utf-8"), str(rel))
            for line, imported in _imports(tree, module, is_package):
                top = imported.split(".")[0]
                if top not in PACKAGES:
                    continue  # the standard library or a third-party package
                where = str(rel)
                if top not in ALLOWED[package]:
                    violations.append(Violation(where, line, imported, f"{package} may not import {top}"))
                elif (
                    package == "workflows"
                    and top == "node"
                    and not (imported == NODE_INTERFACE or imported.startswith(NODE_INTERFACE + "."))
                ):
                    violations.append(
                        Violation(where, line, imported, f"a workflow uses the node via {NODE_INTERFACE}")
                    )
                elif package == "workflows" and top == "workflows":
                    own = module.split(".")[:2]
                    if imported.split(".")[:2] != own and imported != "workflows":
                        violations.append(Violation(where, line, imported, "a workflow never imports another one"))
    return violations


def test_the_source_follows_the_dependency_rule() -> None:
    violations = check_tree(ROOT)
    assert not violations, "\n".join(map(str, violations))


def test_every_package_is_checked() -> None:
    # A package missing from PACKAGES would escape the rule silently.
    found = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert found - {"tests", "bench", "scripts"} <= set(PACKAGES)


def test_the_checker_catches_each_kind_of_violation(tmp_path: Path) -> None:
    files = {
        "medledger/__init__.py": "",
        "medledger/low.py": "from node.service import NodeServices\n",
        "indexer/__init__.py": "def f():\n    import node.api\n",
        "node/__init__.py": "",
        "node/x.py": "from workflows.mpi import module\n",
        "workflows/__init__.py": "",
        "workflows/mpi/__init__.py": "",
        "workflows/mpi/service.py": "from node.release import ReleaseService\nfrom node.modules import NodeModule\n",
        "workflows/mpi/api.py": "from workflows.referrals.service import x\nfrom .service import y\n",
        "workflows/referrals/__init__.py": "from ..mpi import service\n",
        "clients/__init__.py": "",
        "clients/c.py": "from node.storage import open_store\nfrom indexer.queries import IndexQueries\n",
        "assembly/__init__.py": "import workflows.mpi\nimport clients\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = {(v.path, v.imported) for v in check_tree(tmp_path)}
    assert found == {
        ("medledger/low.py", "node.service"),
        ("indexer/__init__.py", "node.api"),
        ("node/x.py", "workflows.mpi"),
        ("workflows/mpi/service.py", "node.release"),
        ("workflows/mpi/api.py", "workflows.referrals.service"),
        ("workflows/referrals/__init__.py", "workflows.mpi"),
        ("clients/c.py", "node.storage"),
    }
