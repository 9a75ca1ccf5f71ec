"""The node's own modules, on the same protocol as the workflows: ``ingest`` (take in clinical records) and
``sharing`` (sign-in, relayed consent, consent-checked release, the patient's views, clinicians and audit) and
``portal`` (the web pages on the node's origin). Their
background work (anchoring, the ledger view, the access logger, erasure markers) is the node's own and runs
whatever modules are enabled (node.runtime)."""

from __future__ import annotations

from collections.abc import Sequence

from node.modules.base import ModuleContext, ModuleRouter, NodeModule


class IngestModule(NodeModule):
    name = "ingest"
    summary = "Ingest HL7 v2, DICOM and FHIR records: encrypt, store, anchor."

    def routers(self, ctx: ModuleContext) -> Sequence[ModuleRouter]:
        from node.api import ingest

        return [ModuleRouter(ingest.router)]


class SharingModule(NodeModule):
    name = "sharing"
    summary = "Consent-checked sharing: sign-in, relayed consent, release, the patient's views, audit."

    def routers(self, ctx: ModuleContext) -> Sequence[ModuleRouter]:
        from node.api import audit, clinical, consent, consortium, directory_routes, me, records, signin

        # In this order the OpenAPI document lists the routes as it always has (new routers go last).
        return [
            ModuleRouter(signin.router),
            ModuleRouter(consent.router),
            ModuleRouter(records.router),
            ModuleRouter(me.router),
            ModuleRouter(audit.router),
            ModuleRouter(clinical.router),
            ModuleRouter(directory_routes.router),
            ModuleRouter(consortium.router),
        ]


class PortalModule(NodeModule):
    name = "portal"
    summary = "The web portal for patients, clinicians, auditors and operators, served on the node's origin."

    def routers(self, ctx: ModuleContext) -> Sequence[ModuleRouter]:
        from node.web import routes

        return [ModuleRouter(routes.router)]


ingest = IngestModule()
sharing = SharingModule()
portal = PortalModule()
