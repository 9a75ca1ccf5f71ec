"""The operator's routes: the node's health at a glance (chain head and index lag, its queues, health checks),
the consortium's members with their roles, and this node's staff accounts (admin only). What the portal's
operator page polls; see node.operations for where the numbers come from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from medledger import __version__
from node.api.deps import Staff, services_of
from node.api.responses import errors
from node.auth import StaffRole, require_role
from node.operations import QueueState, current_members, overview, staff_accounts

router = APIRouter(tags=["ops"])


class ChainError(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ChainReply(BaseModel):
    """The chain as this node sees it. ``rpc_reachable``: the head probe answered; ``ledger_fresh``: the node's
    ledger view is current enough to decide on consent (else it releases nothing)."""

    rpc_reachable: bool
    error: ChainError | None
    chain_id: int | None
    head_block: int | None
    indexed_block: int | None
    index_lag: int | None
    ledger_fresh: bool
    member: bool | None
    roles: list[str]


class QueueReply(BaseModel):
    """Items per status (every status, zero included), how many are not done yet, since when the oldest waits."""

    counts: dict[str, int]
    pending: int
    oldest_pending_at: datetime | None


class CheckReply(BaseModel):
    name: str
    level: str
    detail: str


class NodeReply(BaseModel):
    name: str
    address: str
    version: str
    origin: str
    modules: list[str]


class OverviewReply(BaseModel):
    """``health``: ok, warning or failing (the worst of ``checks``); ``queues``: anchor (records), anchor_batches,
    access_log, chain_writes, notifications (outbound deliveries)."""

    generated_at: datetime
    node: NodeReply
    health: str
    checks: list[CheckReply]
    chain: ChainReply
    queues: dict[str, QueueReply]


class MemberReply(BaseModel):
    address: str
    name: str
    roles: list[str]
    endpoint: str
    admitted_block: int
    this_node: bool


class MembersReply(BaseModel):
    members: list[MemberReply]


class StaffReply(BaseModel):
    id: int
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None
    active: bool


class StaffListReply(BaseModel):
    staff: list[StaffReply]


def _queue(q: QueueState) -> QueueReply:
    return QueueReply(counts=q.counts, pending=q.pending, oldest_pending_at=q.oldest_pending_at)


@router.get(
    "/v1/ops/overview",
    response_model=OverviewReply,
    responses=errors(401),
    summary="The node's health: chain head and index lag, work queues, health checks (any staff)",
)
def ops_overview(request: Request, _: Staff) -> OverviewReply:
    services = services_of(request)
    o = overview(services)
    c = o.chain
    return OverviewReply(
        generated_at=datetime.now().astimezone(),
        node=NodeReply(
            name=services.config.name,
            address=services.address,
            version=__version__,
            origin=services.config.origin,
            modules=[m.name for m in services.modules],
        ),
        health=o.health,
        checks=[CheckReply(name=k.name, level=k.level, detail=k.detail) for k in o.checks],
        chain=ChainReply(
            rpc_reachable=c.rpc_reachable,
            error=ChainError(**c.error) if c.error is not None else None,
            chain_id=c.chain_id,
            head_block=c.head_block,
            indexed_block=c.indexed_block,
            index_lag=c.index_lag,
            ledger_fresh=c.ledger_fresh,
            member=c.member,
            roles=c.roles,
        ),
        queues={name: _queue(q) for name, q in o.queues.items()},
    )


@router.get(
    "/v1/ops/members",
    response_model=MembersReply,
    responses=errors(401, 503),
    summary="The consortium's active members with their roles, as this node's ledger view has them (any staff)",
)
def ops_members(request: Request, _: Staff) -> MembersReply:
    services = services_of(request)
    members = current_members(services)
    me = services.address
    return MembersReply(
        members=[
            MemberReply(
                address=m.account,
                name=m.name,
                roles=m.role_names,
                endpoint=m.endpoint,
                admitted_block=m.admitted_block,
                this_node=m.account == me,
            )
            for m in sorted(members.values(), key=lambda m: (m.admitted_block, m.account))
        ]
    )


@router.get(
    "/v1/staff",
    response_model=StaffListReply,
    responses=errors(401, 403),
    summary="This node's staff accounts, revoked ones included (admin)",
)
def staff_list(request: Request, who: Staff) -> StaffListReply:
    require_role(who, StaffRole.ADMIN)
    return StaffListReply(
        staff=[
            StaffReply(
                id=a.id,
                name=a.name,
                role=a.role,
                created_at=a.created_at,
                revoked_at=a.revoked_at,
                active=a.revoked_at is None,
            )
            for a in staff_accounts(services_of(request))
        ]
    )
