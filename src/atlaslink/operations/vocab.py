"""Closed vocabularies of the rapid-response mechanism (DOMAIN.md §2, §4), with display labels."""

from __future__ import annotations

CRISIS_CATEGORIES: dict[str, str] = {
    "hostage_taking": "Hostage taking",
    "hijack_aircraft": "Hijack of an aircraft",
    "hijack_bus": "Hijack of a bus",
    "hijack_train": "Hijack of a train",
    "hijack_ship": "Hijack of a ship",
    "barricaded_suspect": "Barricaded armed suspect",
    "ongoing_attack": "Ongoing attack",
    "cbrn_threat": "CBRN threat",
    "mass_gathering": "Mass gathering",
    "natural_disaster": "Natural disaster",
    "serious_accident": "Serious accident",
    "other": "Other",
}
# Out of the ATLAS decision's scope: Prüm Art. 18 (or a bilateral agreement) applies instead.
OUTSIDE_2008_617 = frozenset({"mass_gathering", "natural_disaster", "serious_accident"})

NATURES: dict[str, str] = {
    "equipment": "Equipment",
    "expertise": "Expertise",
    "intervention": "Intervention action on the requesting state's territory",
}

LEGAL_BASES: dict[str, str] = {
    "2008/617-art3": "Council Decision 2008/617/JHA, Art. 3",
    "prum-art17": "Prüm Decision 2008/615/JHA, Art. 17 (joint operation)",
    "prum-art18": "Prüm Decision 2008/615/JHA, Art. 18 (mass gathering, disaster, accident)",
    "bilateral": "Bilateral agreement (named)",
}

# EU classified information levels, lowest first; an installation refuses anything above its own.
CLASSIFICATIONS: dict[str, str] = {
    "none": "Not classified",
    "RESTREINT_UE": "RESTREINT UE/EU RESTRICTED",
    "CONFIDENTIEL_UE": "CONFIDENTIEL UE/EU CONFIDENTIAL",
    "SECRET_UE": "SECRET UE/EU SECRET",
}
CLASSIFICATION_RANK = {code: i for i, code in enumerate(CLASSIFICATIONS)}

HANDLING_CODES: dict[str, str] = {
    "H0": "H0 · only for preventing and combating crime",
    "H1": "H1 · not to be disclosed in judicial proceedings without the provider's permission",
    "H2": "H2 · not to be disseminated without the provider's permission",
    "H3": "H3 · other restrictions (see note)",
}

MANIFEST_CATEGORIES: dict[str, str] = {
    "weapon": "Weapon",
    "ammunition": "Ammunition",
    "explosive": "Explosives (breaching)",
    "equipment": "Equipment",
    "vehicle": "Vehicle",
    "aircraft": "Aircraft",
}

MOVEMENT_KINDS: dict[str, str] = {
    "convoy_route": "Convoy route notified to host police",
    "border_crossing": "Border-crossing notification",
    "overflight_clearance": "Overflight clearance",
    "landing_clearance": "Landing clearance",
}
MOVEMENT_STATUSES = ("requested", "granted", "refused", "notified")

GRANTEES = ("support_office", "observers", "country", "unit")
