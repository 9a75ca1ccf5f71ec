"""The regional workflows, one sub-package each, each a node module (node.modules) a node enables in node.toml.

Layout of a workflow ``workflows/<name>/``: ``models.py`` (its tables on its own ``MetaData``) and
``migrations/`` (its Alembic history, version table ``alembic_version_<name>``), ``service.py`` (the logic: API ->
service -> chain | store | db), ``api.py`` (its routers), ``workers.py`` (background loops), ``cli.py`` (its
``medledger <name>`` command group), ``errors.py`` (its error codes with their HTTP status), ``module.py`` (the
``NodeModule`` that ties them together, registered under the ``medledger.modules`` entry-point group in
pyproject.toml).

Rules (tests/test_layering.py enforces them): a workflow imports ``medledger``, ``indexer`` and the node's public
module interface ``node.modules`` only — never another workflow and never a node internal; chain writes go
through the node's chain-write outbox and notices through its notification service, both reached from the
module's context.
"""
