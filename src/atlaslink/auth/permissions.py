"""One permission vocabulary (``<resource>:<action>``) and one role -> permission table."""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    UNITS_READ = "units:read"  # browse units and read what their sharing agreements allow
    UNITS_EDIT_OWN = "units:edit-own"  # own unit's profile, contacts, transport assets
    CAPABILITIES_EDIT_OWN = "capabilities:edit-own"  # own unit's capability entries, confirmations
    SHARING_EDIT_OWN = "sharing:edit-own"  # own unit's sharing agreement
    NETWORK_MANAGE = "network:manage"  # networks, member countries, creating units
    TAXONOMY_EDIT = "taxonomy:edit"
    REGISTRY_IMPORT = "registry:import"
    REGISTRY_EXPORT = "registry:export"
    AUDIT_READ = "audit:read"
    USERS_MANAGE = "users:manage"
    TOKENS_OWN = "tokens:own"  # create, list and revoke one's own API tokens
    # Assistance requests. Which request a holder may see is decided per request
    # (operations/policy.py): the requesting country, the addressed units, granted parties.
    REQUESTS_READ = "requests:read"
    REQUESTS_CREATE = "requests:create"  # pre-alerts and requests of one's own country
    REQUESTS_APPROVE = "requests:approve"  # the national gate of one's own country
    REQUESTS_RESPOND = "requests:respond"  # acknowledge and answer for one's own unit
    DEPLOYMENTS_REPORT = "deployments:report"  # own team's movement, manifest, recall
    OPERATIONS_SUPERVISE = "operations:supervise"  # escalations, grants, network dashboard
    # Country rules (approval step, bilateral agreement needed, host bans, 2008/617) and
    # bilateral agreements: everyone reads them; the support office edits any country's, a
    # national contact point its own country's (and agreements its country is party to).
    COUNTRY_RULES_READ = "country-rules:read"
    COUNTRY_RULES_EDIT = "country-rules:edit"  # any country
    COUNTRY_RULES_EDIT_OWN = "country-rules:edit-own"  # one's own country
    # Standard messages: partners, their endpoints and subscriptions, the outbox and its
    # delivery log (bodies hold request content, so not the platform admin's).
    MESSAGES_MANAGE = "messages:manage"
    # The equipment pool. Which item a holder may see is decided per item by its audience
    # (sharing/policy.rule_allows); loans are seen by the two units only.
    EQUIPMENT_READ = "equipment:read"  # search the pool, item pages, calendars, export
    EQUIPMENT_EDIT_OWN = "equipment:edit-own"  # own unit's items, sharing, maintenance, import
    LOANS_REQUEST = "loans:request"  # ask another unit to lend an item to one's own unit
    LOANS_DECIDE = "loans:decide"  # approve or decline loans of one's own unit's items
    LOANS_HANDOVER = "loans:handover"  # record issue, transit, receipt, return, check


class Role(StrEnum):
    PLATFORM_ADMIN = "platform_admin"
    SUPPORT_OFFICE = "support_office"
    UNIT_COMMANDER = "unit_commander"
    DUTY_OFFICER = "duty_officer"
    NATIONAL_CONTACT = "national_contact"
    OBSERVER = "observer"


ROLE_LABELS: dict[Role, str] = {
    Role.PLATFORM_ADMIN: "Platform admin",
    Role.SUPPORT_OFFICE: "Support office staff",
    Role.UNIT_COMMANDER: "Unit commander",
    Role.DUTY_OFFICER: "Unit duty officer",
    Role.NATIONAL_CONTACT: "National contact point",
    Role.OBSERVER: "Observer",
}

P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    # Operates the installation: accounts and the audit trail of accounts. No unit data.
    Role.PLATFORM_ADMIN: frozenset(
        {P.USERS_MANAGE, P.AUDIT_READ, P.TOKENS_OWN, P.COUNTRY_RULES_READ}
    ),
    # Runs the network: members, taxonomy, spreadsheets. Reads only what units share with it.
    Role.SUPPORT_OFFICE: frozenset(
        {
            P.UNITS_READ,
            P.NETWORK_MANAGE,
            P.TAXONOMY_EDIT,
            P.REGISTRY_IMPORT,
            P.REGISTRY_EXPORT,
            P.AUDIT_READ,
            P.TOKENS_OWN,
            P.REQUESTS_READ,
            P.OPERATIONS_SUPERVISE,
            P.COUNTRY_RULES_READ,
            P.COUNTRY_RULES_EDIT,
            P.MESSAGES_MANAGE,
            P.EQUIPMENT_READ,  # what units share with it; edits the categories (TAXONOMY_EDIT)
        }
    ),
    # Heads a unit: decides its profile and who sees what. Imports only its own unit's rows.
    Role.UNIT_COMMANDER: frozenset(
        {
            P.UNITS_READ,
            P.UNITS_EDIT_OWN,
            P.CAPABILITIES_EDIT_OWN,
            P.SHARING_EDIT_OWN,
            P.REGISTRY_IMPORT,
            P.REGISTRY_EXPORT,
            P.TOKENS_OWN,
            P.REQUESTS_READ,
            P.REQUESTS_CREATE,
            P.REQUESTS_RESPOND,
            P.DEPLOYMENTS_REPORT,
            P.COUNTRY_RULES_READ,
            P.EQUIPMENT_READ,
            P.EQUIPMENT_EDIT_OWN,
            P.LOANS_REQUEST,
            P.LOANS_DECIDE,
            P.LOANS_HANDOVER,
        }
    ),
    # The 24/7 desk: keeps readiness current, raises and answers requests; cannot change sharing.
    Role.DUTY_OFFICER: frozenset(
        {
            P.UNITS_READ,
            P.CAPABILITIES_EDIT_OWN,
            P.REGISTRY_EXPORT,
            P.TOKENS_OWN,
            P.REQUESTS_READ,
            P.REQUESTS_CREATE,
            P.REQUESTS_RESPOND,
            P.DEPLOYMENTS_REPORT,
            P.COUNTRY_RULES_READ,
            # Asks for equipment and hands it over; lending decisions are the commander's.
            P.EQUIPMENT_READ,
            P.LOANS_REQUEST,
            P.LOANS_HANDOVER,
        }
    ),
    # Ministry or police HQ: raises requests for its country and is its national gate.
    Role.NATIONAL_CONTACT: frozenset(
        {
            P.UNITS_READ,
            P.REGISTRY_EXPORT,
            P.TOKENS_OWN,
            P.REQUESTS_READ,
            P.REQUESTS_CREATE,
            P.REQUESTS_APPROVE,
            P.COUNTRY_RULES_READ,
            P.COUNTRY_RULES_EDIT_OWN,
            P.EQUIPMENT_READ,
        }
    ),
    # Reads what is shared with observers; sees a request only when granted.
    Role.OBSERVER: frozenset(
        {
            P.UNITS_READ,
            P.REGISTRY_EXPORT,
            P.TOKENS_OWN,
            P.REQUESTS_READ,
            P.COUNTRY_RULES_READ,
            P.EQUIPMENT_READ,
        }
    ),
}

# Roles whose holders belong to a unit, or to a country.
UNIT_ROLES = frozenset({Role.UNIT_COMMANDER, Role.DUTY_OFFICER})
COUNTRY_ROLES = frozenset({Role.NATIONAL_CONTACT})

# Who can see or change unit data must pass a second factor.
_UNIT_DATA = frozenset(
    {P.UNITS_READ, P.UNITS_EDIT_OWN, P.CAPABILITIES_EDIT_OWN, P.SHARING_EDIT_OWN, P.REGISTRY_IMPORT}
)


def requires_totp(role: Role) -> bool:
    return bool(ROLE_PERMISSIONS[role] & _UNIT_DATA)
