"""Clients: patient wallet, clinician, auditor, researcher; they talk to nodes over HTTP only (issue 6 on)."""
