"""Every error code raised in the source is declared once in the error registry with its HTTP status, the node
answers with that status, and the node's OpenAPI document and docs/node.md list every code the API can answer.

Raise sites are found by reading the source (``ast``), not by importing it, so a code a test never reaches still
counts: ``code="..."`` keywords, ``code = ...`` assignments (class attributes and locals), a literal passed as the
``code`` parameter of a function or class (``ApiError(422, "empty_body", ...)``, ``_fail("sig_missing", ...)``),
string constants passed there by name (``IngestError(HL7_INVALID, ...)``), ``*_CODES`` sets, and tables mapping
contract error names to codes (``{"BreakGlassAlreadyOpen": "break_glass_already_open"}``).
"""

from __future__ import annotations

import ast
import importlib
import logging
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from medledger.errors import CODES, MedLedgerError, define, lookup
from node.api.app import create_app
from node.api.errors import ApiError, install
from node.api.responses import EXTENSION, errors, markdown_table
from node.remote import RemoteRefused
from node.service import NodeServices
from tests.node.test_cli import PASSWORD, make_node

ROOT = Path(__file__).resolve().parents[2]
#: The packages whose raise sites are checked; the toy module of the tests stands in for a workflow (its code is
#: in the registry whenever its test has imported it).
PACKAGES = ("medledger", "node", "indexer", "clients", "assembly", "workflows", "tests/workflows/toy")
#: Modules that declare codes: every package's errors.py and error_codes.py.
DECLARING = ("errors.py", "error_codes.py")
CODE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")
CONTRACT_ERROR = re.compile(r"^[A-Z][A-Za-z0-9]+$")
DOCS_BEGIN, DOCS_END = "<!-- error-codes:begin -->", "<!-- error-codes:end -->"


@dataclass(frozen=True)
class Site:
    code: str
    where: str  # path:line
    status: int | None = None  # the status a raise site states itself (ApiError)


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES if (ROOT / pkg).is_dir() for p in (ROOT / pkg).rglob("*.py"))


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _module_name(path: Path) -> str:
    """The import name of ``path``: from the repository root, or, for a package in a sub-project of its own (a
    workflow with its own pyproject), from the directory holding its top package."""
    top = path.parent
    while (top / "__init__.py").exists() and (top.parent / "__init__.py").exists():
        top = top.parent
    base = top.parent if (top / "__init__.py").exists() and top.parent != ROOT else ROOT
    return ".".join(path.relative_to(base).with_suffix("").parts)


def _declaring_modules() -> list[str]:
    return [_module_name(p) for p in _sources() if p.name in DECLARING]


@pytest.fixture(scope="module", autouse=True)
def registry() -> None:
    """Everything that declares codes is imported, as a running node, CLI or workflow would import it."""
    for name in _declaring_modules():
        importlib.import_module(name)


# ---------------------------------------------------------------------------------------------- reading the source


def _code_param(args: ast.arguments, *, method: bool) -> int | None:
    """Where ``code`` is among the positional parameters, if it is followed by ``message`` (an error's signature:
    ``error_body(code, message)``, ``ApiError(status, code, message)``; not a FHIR ``coding(system, code, ...)``)."""
    positional = [a.arg for a in (*args.posonlyargs, *args.args)][1 if method else 0 :]
    if "code" not in positional:
        return None
    i = positional.index("code")
    return i if positional[i + 1 : i + 2] == ["message"] else None


class _Index:
    """What a raise site may refer to: string constants by name, and which functions and classes take ``code``."""

    def __init__(self, trees: dict[Path, ast.Module]) -> None:
        self.constants: dict[str, str] = {}
        self.classes: dict[str, int] = {}
        self.functions: dict[tuple[Path, str], int] = {}
        for path, tree in trees.items():
            for node in tree.body:
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                    for target in node.targets:
                        if isinstance(target, ast.Name) and target.id.isupper() and isinstance(node.value.value, str):
                            self.constants[target.id] = node.value.value
                elif isinstance(node, ast.FunctionDef) and (i := _code_param(node.args, method=False)) is not None:
                    self.functions[(path, node.name)] = i
                elif isinstance(node, ast.ClassDef):
                    for item in node.body:
                        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                            i = _code_param(item.args, method=True)
                            if i is not None:
                                self.classes[node.name] = i

    def literals(self, expr: ast.expr | None) -> list[str]:
        """The codes an expression in a code position can evaluate to."""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return [expr.value]
        if isinstance(expr, ast.Name) and expr.id in self.constants:
            return [self.constants[expr.id]]
        if isinstance(expr, ast.Attribute) and expr.attr in self.constants:
            return [self.constants[expr.attr]]
        if isinstance(expr, ast.IfExp):
            return self.literals(expr.body) + self.literals(expr.orelse)
        if isinstance(expr, ast.BoolOp):
            return [c for v in expr.values for c in self.literals(v)]
        if isinstance(expr, ast.Dict):
            return [c for v in expr.values for c in self.literals(v)]
        if isinstance(expr, ast.Call):
            func = expr.func
            if isinstance(func, ast.Name) and func.id == "str" and len(expr.args) == 1:
                return self.literals(expr.args[0])
            if isinstance(func, ast.Attribute) and func.attr == "get" and len(expr.args) == 2:
                table = self.literals(func.value) if isinstance(func.value, ast.Dict) else []
                return table + self.literals(expr.args[1])
        return []

    def code_position(self, path: Path, call: ast.Call) -> int | None:
        func = call.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name is None:
            return None
        if (path, name) in self.functions:
            return self.functions[(path, name)]
        if name in self.classes:
            return self.classes[name]
        elsewhere = {i for (_, fn), i in self.functions.items() if fn == name}
        return elsewhere.pop() if len(elsewhere) == 1 else None


def _set_elements(expr: ast.expr) -> list[ast.expr]:
    """The elements of ``{...}``, ``frozenset({...})`` or ``set({...})``."""
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id in ("frozenset", "set"):
        return _set_elements(expr.args[0]) if len(expr.args) == 1 else []
    return list(expr.elts) if isinstance(expr, ast.Set) else []


def _is_define(call: ast.Call) -> bool:
    return isinstance(call.func, ast.Name) and call.func.id == "define"


def _walk(path: Path, tree: ast.Module, index: _Index) -> Iterator[Site]:
    rel = path.relative_to(ROOT)
    for node in ast.walk(tree):
        found: list[str] = []
        status: int | None = None
        if isinstance(node, ast.Call) and not _is_define(node):
            for kw in node.keywords:
                if kw.arg == "code":
                    found += index.literals(kw.value)
            i = index.code_position(path, node)
            if i is not None and i < len(node.args):
                found += index.literals(node.args[i])
                first = node.args[0]
                if i == 1 and isinstance(first, ast.Constant) and isinstance(first.value, int):
                    status = first.value  # ApiError(status, code, ...)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if "code" in names:
                found += index.literals(node.value)
            elif any(n.endswith("_CODES") for n in names) and node.value is not None:
                found += [c for e in _set_elements(node.value) for c in index.literals(e)]
        if (
            isinstance(node, ast.Dict)
            and node.keys
            and all(
                isinstance(k, ast.Constant) and isinstance(k.value, str) and CONTRACT_ERROR.match(k.value)
                for k in node.keys
            )
        ):
            values = [index.literals(v) for v in node.values]
            if all(len(v) == 1 and CODE.match(v[0]) for v in values):
                found += [v[0] for v in values]  # a table from contract error names to codes
        for code in found:
            if code:  # "" is the "no code" of a local variable, not a code
                yield Site(code, f"{rel}:{getattr(node, 'lineno', 0)}", status)


def status_of(code: str) -> int:
    entry = lookup(code)
    assert entry is not None, f"{code} is not declared"
    return entry.status


def raise_sites() -> list[Site]:
    trees = {p: _parse(p) for p in _sources()}
    index = _Index(trees)
    return [site for path, tree in trees.items() for site in _walk(path, tree, index)]


def declarations() -> list[tuple[str, str]]:
    """Every literal ``define("code", ...)`` in the source, with where it is."""
    out = []
    for path in _sources():
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.Call) and _is_define(node) and node.args:
                first = node.args[0]
                assert isinstance(first, ast.Constant), f"{path}:{node.lineno}: define() takes a literal code"
                out.append((first.value, f"{path.relative_to(ROOT)}:{node.lineno}"))
    return out


# ---------------------------------------------------------------------------------------------- the registry


def test_the_source_walk_finds_each_kind_of_raise_site() -> None:
    """The walk itself works: one known code per kind of raise site (else the checks below check nothing)."""
    found = {s.code for s in raise_sites()}
    assert {
        "ciphertext_corrupted",  # code="..." keyword
        "consent_denied",  # class attribute
        "empty_body",  # ApiError(status, code, ...)
        "sig_missing",  # _fail("sig_missing", ...): a function's code parameter
        "hl7_invalid",  # IngestError(HL7_INVALID, ...): a constant by name, and the ALL_CODES set
        "break_glass_already_open",  # an inline contract-error table
        "relayer_not_authorized",  # node.relay's _REVERT_CODES table
        "contract_reverted",  # the table's .get default
        "store_failed",  # a conditional expression
        "internal_error",  # error_body("internal_error", ...)
        "custodian_refused",  # str(err.get("code", "custodian_refused"))
        "usage",  # error_line("usage", ...), the CLI's
    } <= found
    assert not {"", "code", "OT", "IRCP", "rest"} & found  # not a local's empty default, a FHIR code, a key


def test_every_code_raised_in_the_source_is_declared_with_a_status() -> None:
    missing = defaultdict(list)
    for site in raise_sites():
        if lookup(site.code) is None:
            missing[site.code].append(site.where)
    assert not missing, f"codes raised but not declared with medledger.errors.define: {dict(missing)}"


def test_every_declared_code_is_raised_somewhere() -> None:
    """No stale entries: a code nothing raises any more would be documented as an answer the API never gives."""
    raised = {s.code for s in raise_sites()}
    assert sorted(e.code for e in CODES if e.code not in raised) == []


def test_api_errors_state_the_status_their_code_is_declared_with() -> None:
    stated = [s for s in raise_sites() if s.status is not None]
    assert stated, "no ApiError(status, code) raise site found"
    wrong = [(s.code, s.status, status_of(s.code), s.where) for s in stated if status_of(s.code) != s.status]
    assert not wrong


def test_every_code_is_declared_exactly_once() -> None:
    places = defaultdict(list)
    for code, where in declarations():
        places[code].append(where)
    assert not {c: w for c, w in places.items() if len(w) > 1}
    # Every entry of the registry comes from a declaration in the source (none made up at run time).
    assert {e.code for e in CODES} == set(places)
    assert all(400 <= e.status <= 599 and e.description for e in CODES)


def test_a_second_module_cannot_redefine_a_code() -> None:
    with pytest.raises(ValueError, match=r"already defined by node\.error_codes"):
        define("ciphertext_corrupted", 502, "another meaning")
    assert status_of("ciphertext_corrupted") == 500
    with pytest.raises(ValueError, match="not an HTTP error status"):
        define("fresh_code_for_the_test", 200, "not an error")
    with pytest.raises(ValueError, match="snake_case"):
        define("Bad-Code", 400, "not a code")
    assert "fresh_code_for_the_test" not in CODES


def test_server_faults_answer_5xx() -> None:
    for code in (
        "ciphertext_corrupted",
        "blob_corrupted",
        "blob_not_found",
        "blob_store_unavailable",
        "decryption_failed",
        "store_failed",
        "config_error",
        "internal_error",
        "ledger_unavailable",
        "access_log_unavailable",
        "custodian_unreachable",
        "chain_unavailable",
    ):
        assert status_of(code) >= 500, code


# ---------------------------------------------------------------------------------------------- the answers


@pytest.fixture
def raising() -> TestClient:
    """A FastAPI app with the node's error handling whose route raises what the test asks for."""
    app = FastAPI()
    install(app)

    @app.get("/raise/{kind}/{code}")
    def _raise(kind: str, code: str) -> None:
        if kind == "relayed":
            raise RemoteRefused(404, code, "Hospital A: no such thing", {})
        if kind == "api":
            raise ApiError(409, code, "conflict")
        raise MedLedgerError("something failed", code=code, details={"secret": "x"})

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("code", "status"),
    [("ciphertext_corrupted", 500), ("consent_denied", 403), ("siwe_expired", 401), ("custodian_error", 502)],
)
def test_the_status_comes_from_the_registry(raising: TestClient, code: str, status: int) -> None:
    r = raising.get(f"/raise/own/{code}")
    assert r.status_code == status and r.json()["error"]["code"] == code
    assert ("WWW-Authenticate" in r.headers) is (status == 401)


def test_an_undeclared_code_answers_500_internal_error_and_is_logged(
    raising: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="medledger.node.api"):
        r = raising.get("/raise/own/never_declared_anywhere")
        api = raising.get("/raise/api/never_declared_either")
    assert r.status_code == 500 and r.json() == {
        "error": {"code": "internal_error", "message": "internal error", "details": {}}
    }
    assert api.status_code == 500 and api.json()["error"]["code"] == "internal_error"
    logged = " ".join(rec.getMessage() for rec in caplog.records)
    assert "never_declared_anywhere" in logged and "never_declared_either" in logged


def test_an_error_relayed_from_another_node_keeps_its_status_and_code(raising: TestClient) -> None:
    # A code this node does not know (another node's workflow, say) is that node's to declare.
    r = raising.get("/raise/relayed/a_workflow_code_of_theirs")
    assert r.status_code == 404 and r.json()["error"]["code"] == "a_workflow_code_of_theirs"
    assert raising.get("/raise/relayed/consent_denied").status_code == 404


# ---------------------------------------------------------------------------------------------- the documents


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The OpenAPI document of a real node app, built the way tests/node/test_api.py builds it."""
    services = NodeServices.open(make_node(tmp_path_factory.mktemp("node")), password=PASSWORD)
    try:
        return create_app(services).openapi()
    finally:
        services.close()


def test_every_error_response_of_the_spec_lists_every_code_of_its_status(spec: dict[str, Any]) -> None:
    declared: set[int] = set()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for status, response in op["responses"].items():
                if not status.startswith(("4", "5")):
                    continue
                declared.add(int(status))
                expected = [e.code for e in CODES.with_status(int(status))]
                assert response[EXTENSION] == expected, (path, method, status)
                assert all(f"`{c}`" in response["description"] for c in expected), (path, method, status)
    assert {401, 403, 404, 409, 410, 413, 415, 422, 500, 502, 503} <= declared
    # The codes of statuses no route declares (405, 504, ...) are in the document too, at its root.
    assert spec[EXTENSION] == {e.code: {"status": e.status, "description": e.description} for e in CODES if e.api}
    assert {"ciphertext_corrupted", "method_not_allowed", "transaction_timeout"} <= set(spec[EXTENSION])
    assert "wallet_exists" not in spec[EXTENSION]  # a client's code, never answered by a node


def test_codes_declared_after_the_routes_still_reach_the_document(tmp_path: Path) -> None:
    """A workflow's codes are declared when its module loads, after the node's routes called errors()."""
    responses = errors(409)
    assert "late_workflow_conflict" not in responses[409][EXTENSION]
    app = FastAPI()
    install(app)
    app.get("/thing", responses=responses)(lambda: None)
    entry = define("late_workflow_conflict", 409, "a conflict a workflow declares late")
    try:
        doc = app.openapi()
        assert "late_workflow_conflict" in doc["paths"]["/thing"]["get"]["responses"]["409"][EXTENSION]
        assert doc[EXTENSION]["late_workflow_conflict"]["status"] == 409
    finally:
        CODES._entries.pop(entry.code)  # the registry has no removal: codes are never undeclared at run time


def test_docs_error_table_matches_the_registry() -> None:
    text = (ROOT / "docs" / "node.md").read_text()
    assert DOCS_BEGIN in text and DOCS_END in text
    table = text.split(DOCS_BEGIN, 1)[1].split(DOCS_END, 1)[0].strip()
    assert table == markdown_table(), "docs/node.md is out of date; replace its table with:\n" + markdown_table()
