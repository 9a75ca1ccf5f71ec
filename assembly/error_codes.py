"""The assembly's error codes (the regional demo) in the registry (medledger.errors); no HTTP API raises them."""

from __future__ import annotations

from medledger.errors import define

define("demo_failed", 500, "a step of the regional demo failed", api=False)
define("demo_dir_not_empty", 422, "the demo directory is neither new nor empty", api=False)
