"""Where the sharing API went: it is split by job into node.api.signin, consent, records, me, audit and clinical
(the routers, mounted by node.modules.builtin), with their shared input helpers in node.api.params, their reply
documents in node.api.schemas and the shaping of results into them in node.api.shaping.

Only a re-export is left here, for code that still imports the reply documents from this module
(tests/sharing/test_attacks.py); new code imports node.api.schemas.
"""

from __future__ import annotations

from node.api.schemas import ReleaseReply

__all__ = ["ReleaseReply"]
