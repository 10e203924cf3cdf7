"""Who may see an assistance request, and in which capacity.

Only the requesting country, the addressed units and those granted visibility see a request
(issue 3). A request the caller may not see answers 404, never 403. Within a request, the
details of an offer (package, costs, conditions, arrangements, manifest) are for the two
parties: the requesting side and the offering unit.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, false, or_, select
from sqlalchemy.orm import Session

from atlaslink.auth.permissions import Permission, Role
from atlaslink.auth.principal import Principal
from atlaslink.errors import Forbidden, NotFound
from atlaslink.models import AssistanceRequest, RequestAddressee, RequestGrant
from atlaslink.operations.states import RequestStatus

# Before submission a request exists for its own country only.
_UNSENT = (RequestStatus.DRAFT.value, RequestStatus.NATIONAL_APPROVAL.value)


@dataclass(frozen=True)
class Involvement:
    requester: bool  # the requesting side: people of the requesting country
    approver: bool  # the national gate of the requesting country
    addressee_id: int | None  # the caller's unit was addressed
    supervisor: bool  # the support office, when the request was escalated or granted to it
    granted: bool  # visibility granted (observers, another country or unit)

    @property
    def visible(self) -> bool:
        return (
            self.requester
            or self.approver
            or self.addressee_id is not None
            or self.supervisor
            or self.granted
        )


def _is_requesting_side(p: Principal, req: AssistanceRequest) -> bool:
    if p.kind != "user" or not p.can(Permission.REQUESTS_READ):
        return False
    return (
        p.country is not None
        and p.country == req.requesting_country
        and (p.role in (Role.UNIT_COMMANDER, Role.DUTY_OFFICER, Role.NATIONAL_CONTACT))
    )


def involvement(session: Session, p: Principal, req: AssistanceRequest) -> Involvement:
    if p.kind != "user" or not p.can(Permission.REQUESTS_READ):
        return Involvement(False, False, None, False, False)
    requester = _is_requesting_side(p, req)
    approver = requester and p.can(Permission.REQUESTS_APPROVE)
    sent = req.status not in _UNSENT
    addressee_id = None
    if sent and p.unit_id is not None:
        addressee_id = session.scalar(
            select(RequestAddressee.id).where(
                RequestAddressee.request_id == req.id, RequestAddressee.unit_id == p.unit_id
            )
        )
    grants = (
        session.execute(
            select(RequestGrant.grantee, RequestGrant.country_iso2, RequestGrant.unit_id).where(
                RequestGrant.request_id == req.id
            )
        ).all()
        if sent
        else []
    )
    supervisor = p.role is Role.SUPPORT_OFFICE and any(g[0] == "support_office" for g in grants)
    granted = any(
        (g[0] == "observers" and p.role is Role.OBSERVER)
        or (g[0] == "country" and p.country is not None and g[1] == p.country)
        or (g[0] == "unit" and p.unit_id is not None and g[2] == p.unit_id)
        for g in grants
    )
    return Involvement(requester, approver, addressee_id, supervisor, granted)


def readable(p: Principal) -> ColumnElement[bool]:
    """The same rule as :func:`involvement`, as a SQL condition for lists and search."""
    if p.kind != "user" or not p.can(Permission.REQUESTS_READ):
        return false()
    req = AssistanceRequest
    options: list[ColumnElement[bool]] = []
    if p.country is not None and p.role in (
        Role.UNIT_COMMANDER,
        Role.DUTY_OFFICER,
        Role.NATIONAL_CONTACT,
    ):
        options.append(req.requesting_country == p.country)
    sent = req.status.not_in(_UNSENT)
    if p.unit_id is not None:
        options.append(
            and_(
                sent,
                exists(
                    select(RequestAddressee.id).where(
                        RequestAddressee.request_id == req.id,
                        RequestAddressee.unit_id == p.unit_id,
                    )
                ),
            )
        )
    grant_hits: list[ColumnElement[bool]] = []
    if p.role is Role.SUPPORT_OFFICE:
        grant_hits.append(RequestGrant.grantee == "support_office")
    if p.role is Role.OBSERVER:
        grant_hits.append(RequestGrant.grantee == "observers")
    if p.country is not None:
        grant_hits.append(
            and_(RequestGrant.grantee == "country", RequestGrant.country_iso2 == p.country)
        )
    if p.unit_id is not None:
        grant_hits.append(and_(RequestGrant.grantee == "unit", RequestGrant.unit_id == p.unit_id))
    if grant_hits:
        options.append(
            and_(
                sent,
                exists(
                    select(RequestGrant.id).where(
                        RequestGrant.request_id == req.id, or_(*grant_hits)
                    )
                ),
            )
        )
    return or_(*options) if options else false()


def get_visible(
    session: Session, p: Principal, request_id: int, *, for_update: bool = False
) -> tuple[AssistanceRequest, Involvement]:
    stmt = select(AssistanceRequest).where(AssistanceRequest.id == request_id)
    if for_update:
        stmt = stmt.with_for_update()
    req = session.scalar(stmt)
    if req is None:
        raise NotFound(f"No request {request_id} that you may see.")
    inv = involvement(session, p, req)
    if not inv.visible:
        raise NotFound(f"No request {request_id} that you may see.")
    return req, inv


def require_requester(p: Principal, inv: Involvement, permission: Permission) -> None:
    p.require(permission)
    if not inv.requester:
        raise Forbidden("Only the requesting country may do this.")


def sees_offer_details(inv: Involvement, offer_unit_id: int, p: Principal) -> bool:
    """Package, costs, conditions, arrangements and manifest: the two parties (and a support
    office the request was escalated to, which has to help settle it)."""
    return inv.requester or inv.supervisor or (p.unit_id is not None and p.unit_id == offer_unit_id)
