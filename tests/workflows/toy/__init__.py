"""A toy workflow laid out as every workflow under ``workflows/`` is (models + migrations, service, api, workers,
cli, errors, module), used by tests/workflows/test_toy_module.py to prove the node-module seam end to end. It
imports the node only through ``node.modules``, as the layering rule requires of workflows."""
