"""Fictional demo data set for the ATLAS network.

Every unit name, code, contact and exercise in this module is invented. Base
locations are real cities with approximate coordinates. Phone numbers use the
fictional "555" block and e-mail addresses use the reserved ``.invalid`` TLD.

Capabilities are generated deterministically from a per-unit profile (size,
coast, legal framework for deployments abroad) with a ``random.Random`` seeded
by the unit code, so the data is identical on every import.
"""

import random
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class DemoCountry:
    iso2: str  # "AT"
    name: str  # English short name "Austria"
    status: str  # "eu" | "associated" | "other"


@dataclass(frozen=True)
class DemoCapability:
    type_code: str
    level: int
    package_size: int | None
    notice_to_move_hours: int | None
    self_sufficiency_hours: int | None
    may_deploy_abroad: bool
    may_carry_arms_abroad: bool
    may_carry_explosives_abroad: bool
    last_validated: date | None
    validated_exercise: str | None
    confirmed_days_ago: int


@dataclass(frozen=True)
class DemoTransport:
    kind: str  # "helicopter" | "aircraft" | "armoured_vehicle" | "boat"
    description: str
    quantity: int
    capacity_persons: int | None


@dataclass(frozen=True)
class DemoContact:
    kind: str  # "phone" | "email" | "radio"
    label: str
    value: str


@dataclass(frozen=True)
class DemoSharing:
    audiences: dict[str, str]
    listed_countries: tuple[str, ...] = ()
    listed_units: tuple[str, ...] = ()


@dataclass(frozen=True)
class DemoUnit:
    code: str
    name: str
    country: str
    base_location: str
    latitude: float
    longitude: float
    languages: tuple[str, ...]
    competent_authority: str
    contacts: tuple[DemoContact, ...]
    capabilities: tuple[DemoCapability, ...]
    transport: tuple[DemoTransport, ...]
    sharing: DemoSharing


CAPABILITY_CODES: tuple[str, ...] = (
    "building",
    "aircraft",
    "maritime",
    "land_transport",
    "vehicle_interdiction",
    "open_terrain",
    "critical_infrastructure",
    "breaching_mechanical",
    "breaching_ballistic",
    "breaching_explosive",
    "breaching_thermal",
    "sniper_observer",
    "crisis_negotiation",
    "tactical_medicine",
    "canine",
    "rope_access",
    "helicopter_insertion",
    "parachute_insertion",
    "combat_diving",
    "recon_robotics",
    "drones",
    "counter_drone",
    "eod_liaison",
    "cbrn_protected",
    "armoured_mobility",
    "command_liaison",
    "technical_surveillance",
)

COUNTRIES: tuple[DemoCountry, ...] = (
    DemoCountry("AT", "Austria", "eu"),
    DemoCountry("BE", "Belgium", "eu"),
    DemoCountry("BG", "Bulgaria", "eu"),
    DemoCountry("HR", "Croatia", "eu"),
    DemoCountry("CY", "Cyprus", "eu"),
    DemoCountry("CZ", "Czechia", "eu"),
    DemoCountry("DK", "Denmark", "eu"),
    DemoCountry("EE", "Estonia", "eu"),
    DemoCountry("FI", "Finland", "eu"),
    DemoCountry("FR", "France", "eu"),
    DemoCountry("DE", "Germany", "eu"),
    DemoCountry("GR", "Greece", "eu"),
    DemoCountry("HU", "Hungary", "eu"),
    DemoCountry("IE", "Ireland", "eu"),
    DemoCountry("IT", "Italy", "eu"),
    DemoCountry("LV", "Latvia", "eu"),
    DemoCountry("LT", "Lithuania", "eu"),
    DemoCountry("LU", "Luxembourg", "eu"),
    DemoCountry("MT", "Malta", "eu"),
    DemoCountry("NL", "Netherlands", "eu"),
    DemoCountry("PL", "Poland", "eu"),
    DemoCountry("PT", "Portugal", "eu"),
    DemoCountry("RO", "Romania", "eu"),
    DemoCountry("SK", "Slovakia", "eu"),
    DemoCountry("SI", "Slovenia", "eu"),
    DemoCountry("ES", "Spain", "eu"),
    DemoCountry("SE", "Sweden", "eu"),
    DemoCountry("NO", "Norway", "associated"),
    DemoCountry("IS", "Iceland", "associated"),
    DemoCountry("CH", "Switzerland", "associated"),
    DemoCountry("GB", "United Kingdom", "other"),
    DemoCountry("LI", "Liechtenstein", "other"),
)

# --------------------------------------------------------------------------
# Internal helpers
# --------------------------------------------------------------------------

_TODAY = date(2026, 11, 23)
_NO_UNIT_COUNTRIES: frozenset[str] = frozenset({"LI"})
_FIELD_GROUPS: tuple[str, ...] = (
    "existence",
    "level",
    "package",
    "notice",
    "transport",
    "contacts",
)
_AUDIENCES: tuple[str, ...] = (
    "network",
    "listed",
    "support_office",
    "matching",
    "own_unit",
)
_PROFILES: tuple[str, ...] = ("large", "medium", "small")
_TRANSPORT_KINDS: tuple[str, ...] = (
    "helicopter",
    "aircraft",
    "armoured_vehicle",
    "boat",
)

_CALLING_CODES: dict[str, str] = {
    "AT": "43",
    "BE": "32",
    "BG": "359",
    "HR": "385",
    "CY": "357",
    "CZ": "420",
    "DK": "45",
    "EE": "372",
    "FI": "358",
    "FR": "33",
    "DE": "49",
    "GR": "30",
    "HU": "36",
    "IE": "353",
    "IT": "39",
    "LV": "371",
    "LT": "370",
    "LU": "352",
    "MT": "356",
    "NL": "31",
    "PL": "48",
    "PT": "351",
    "RO": "40",
    "SK": "421",
    "SI": "386",
    "ES": "34",
    "SE": "46",
    "NO": "47",
    "IS": "354",
    "CH": "41",
    "GB": "44",
}

# Every unit declares these; levels for them are biased upwards.
_CORE: tuple[str, ...] = (
    "building",
    "vehicle_interdiction",
    "breaching_mechanical",
    "sniper_observer",
    "crisis_negotiation",
    "tactical_medicine",
    "command_liaison",
)
_MARITIME: tuple[str, ...] = ("maritime", "combat_diving")
# Specialist teams deploy as small packages rather than assault groups.
_SMALL_TEAM: frozenset[str] = frozenset(
    {
        "sniper_observer",
        "crisis_negotiation",
        "tactical_medicine",
        "canine",
        "recon_robotics",
        "drones",
        "counter_drone",
        "eod_liaison",
        "command_liaison",
        "technical_surveillance",
    }
)
_EXPLOSIVE_CODES: frozenset[str] = frozenset({"breaching_explosive", "eod_liaison"})

# (min, max) number of capabilities per profile
_CAP_COUNT: dict[str, tuple[int, int]] = {
    "large": (17, 20),
    "medium": (12, 15),
    "small": (8, 10),
}
# weights for levels 0, 1, 2, 3: (core capability, other capability)
_LEVEL_WEIGHTS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "large": ((0, 0, 2, 8), (0.2, 1, 4, 6)),
    "medium": ((0, 1, 5, 4), (0.3, 3, 6, 2)),
    "small": ((0, 4, 6, 1), (0.7, 6, 4, 0)),
}
_PACKAGE_RANGE: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    # (assault package range, specialist team range)
    "large": ((20, 40), (4, 12)),
    "medium": ((8, 24), (2, 8)),
    "small": ((4, 12), (2, 6)),
}
_NOTICE_RANGE: dict[str, tuple[int, int]] = {
    "large": (1, 6),
    "medium": (2, 12),
    "small": (4, 24),
}
_SELF_SUFFICIENCY: dict[str, tuple[int, ...]] = {
    "large": (24, 48, 72, 96),
    "medium": (24, 36, 48, 72),
    "small": (12, 24, 36, 48),
}
# legal framework for deployments abroad: (deploy, carry arms, carry explosives)
_ABROAD: dict[str, tuple[bool, bool, bool]] = {
    "full": (True, True, True),
    "armed": (True, True, False),
    "unarmed": (True, False, False),
    "none": (False, False, False),
}

_EXERCISE_ADJ: tuple[str, ...] = (
    "NORTHERN",
    "IRON",
    "SILENT",
    "BLUE",
    "COASTAL",
    "ALPINE",
    "GREY",
    "AMBER",
    "SWIFT",
    "STEEL",
    "WESTERN",
    "MIDNIGHT",
)
_EXERCISE_NOUN: tuple[str, ...] = (
    "LOCK",
    "GATE",
    "HARBOUR",
    "SHIELD",
    "ANCHOR",
    "RIDGE",
    "LANTERN",
    "BRIDGE",
    "TIDE",
    "KEY",
    "ARROW",
    "COMPASS",
)
_VALIDATION_FIRST = date(2023, 1, 9).toordinal()
_VALIDATION_LAST = date(2026, 11, 13).toordinal()


def _maybe(rng: random.Random, value: int, none_share: float = 0.07) -> int | None:
    return None if rng.random() < none_share else value


def _capabilities(
    code: str,
    profile: str,
    coastal: bool,
    abroad: str,
    must: tuple[str, ...],
) -> tuple[DemoCapability, ...]:
    # Seeded for reproducible demo data, not for anything security related.
    rng = random.Random(f"atlaslink-demo:{code}")  # noqa: S311
    lo, hi = _CAP_COUNT[profile]
    target = rng.randint(lo, hi)
    chosen: list[str] = list(_CORE)
    for extra in must:
        if extra not in chosen:
            chosen.append(extra)
    if coastal:
        if "maritime" not in chosen:
            chosen.append("maritime")
        wants_diving = profile == "large" or (profile == "medium" and rng.random() < 0.6)
        if wants_diving and "combat_diving" not in chosen:
            chosen.append("combat_diving")
    pool = [
        c
        for c in CAPABILITY_CODES
        if c not in chosen
        and c not in _MARITIME
        and not (profile == "small" and c == "parachute_insertion")
    ]
    rng.shuffle(pool)
    while len(chosen) < target and pool:
        chosen.append(pool.pop())

    deploy_ok, arms_ok, explosives_ok = _ABROAD[abroad]
    core_w, other_w = _LEVEL_WEIGHTS[profile]
    assault_range, team_range = _PACKAGE_RANGE[profile]
    notice_lo, notice_hi = _NOTICE_RANGE[profile]
    result: list[DemoCapability] = []
    for type_code in CAPABILITY_CODES:
        if type_code not in chosen:
            continue
        weights = core_w if type_code in _CORE else other_w
        level = rng.choices(range(4), weights=weights)[0]
        if type_code in must:  # a unit's signature speciality is never weak
            level = max(level, 2)
        p_lo, p_hi = team_range if type_code in _SMALL_TEAM else assault_range
        package = _maybe(rng, rng.randint(p_lo, p_hi))
        notice = _maybe(rng, rng.randint(notice_lo, notice_hi))
        sustain = _maybe(rng, rng.choice(_SELF_SUFFICIENCY[profile]))
        if level == 0:
            package = notice = None
        deploy = deploy_ok and level > 0 and rng.random() > 0.06
        arms = deploy and arms_ok
        explosives = deploy and explosives_ok and type_code in _EXPLOSIVE_CODES
        validated: date | None = None
        exercise: str | None = None
        if level > 0 and rng.random() > 0.12:
            validated = date.fromordinal(rng.randint(_VALIDATION_FIRST, _VALIDATION_LAST))
            if rng.random() > 0.15:
                adj = rng.choice(_EXERCISE_ADJ)
                noun = rng.choice(_EXERCISE_NOUN)
                exercise = f"Exercise {adj} {noun} {validated.year}"
        stale = rng.random() < 0.15
        confirmed = rng.randint(91, 200) if stale else rng.randint(0, 90)
        result.append(
            DemoCapability(
                type_code=type_code,
                level=level,
                package_size=package,
                notice_to_move_hours=notice,
                self_sufficiency_hours=sustain,
                may_deploy_abroad=deploy,
                may_carry_arms_abroad=arms,
                may_carry_explosives_abroad=explosives,
                last_validated=validated,
                validated_exercise=exercise,
                confirmed_days_ago=confirmed,
            )
        )
    return tuple(result)


def _contacts(code: str, profile: str) -> tuple[DemoContact, ...]:
    cc = _CALLING_CODES[code[:2]]
    seed = sum(ord(ch) * (i + 1) for i, ch in enumerate(code))
    domain = f"{code.lower()}.example.invalid"
    contacts = [
        DemoContact("phone", "24/7 duty desk", f"+{cc} 555 01{seed % 100:02d} {seed % 997:03d}"),
        DemoContact("email", "Operations mailbox", f"dutydesk@{domain}"),
    ]
    if profile != "small":
        if seed % 2:
            issi = 9_000_000 + seed * 131 % 1_000_000
            contacts.append(
                DemoContact("radio", "Cross-border liaison talkgroup", f"TETRA ISSI {issi}")
            )
        else:
            contacts.append(
                DemoContact(
                    "phone",
                    "Operations commander (on call)",
                    f"+{cc} 555 02{seed % 89:02d} {seed % 991:03d}",
                )
            )
    return tuple(contacts)


def _heli(quantity: int, heavy: bool = False) -> DemoTransport:
    if heavy:
        return DemoTransport(
            "helicopter",
            "Heavy utility helicopter (Super Puma class, air force on call)",
            quantity,
            18,
        )
    return DemoTransport(
        "helicopter",
        "Medium twin-engine helicopter (H145 class, police air wing)",
        quantity,
        9,
    )


def _plane(quantity: int, large: bool = False) -> DemoTransport:
    if large:
        return DemoTransport(
            "aircraft",
            "Tactical transport aircraft (C-295 class, air force on request)",
            quantity,
            45,
        )
    return DemoTransport("aircraft", "Light twin-turboprop aircraft (King Air class)", quantity, 8)


def _armour(quantity: int) -> DemoTransport:
    return DemoTransport(
        "armoured_vehicle", "Armoured personnel carrier (wheeled 4x4)", quantity, 10
    )


def _boat(quantity: int, large: bool = False) -> DemoTransport:
    if large:
        return DemoTransport("boat", "Fast interceptor craft (15 m, twin water-jet)", quantity, 14)
    return DemoTransport("boat", "Rigid-hull inflatable boat (9 m RHIB)", quantity, 8)


def _generous(countries: tuple[str, ...], units: tuple[str, ...] = ()) -> DemoSharing:
    audiences = dict.fromkeys(_FIELD_GROUPS, "network")
    audiences["contacts"] = "listed"
    return DemoSharing(audiences, countries, units)


def _mixed(countries: tuple[str, ...], units: tuple[str, ...] = ()) -> DemoSharing:
    return DemoSharing(
        {
            "existence": "network",
            "level": "network",
            "package": "listed",
            "notice": "support_office",
            "transport": "listed",
            "contacts": "own_unit",
        },
        countries,
        units,
    )


def _strict(existence: str = "support_office") -> DemoSharing:
    return DemoSharing(
        {
            "existence": existence,
            "level": "matching",
            "package": "own_unit",
            "notice": "matching",
            "transport": "own_unit",
            "contacts": "own_unit",
        }
    )


def _unit(
    code: str,
    name: str,
    base: tuple[str, float, float],
    languages: tuple[str, ...],
    authority: str,
    profile: str,
    coastal: bool,
    transport: tuple[DemoTransport, ...],
    sharing: DemoSharing,
    abroad: str = "full",
    must: tuple[str, ...] = (),
) -> DemoUnit:
    city, lat, lon = base
    return DemoUnit(
        code=code,
        name=name,
        country=code[:2],
        base_location=city,
        latitude=lat,
        longitude=lon,
        languages=languages,
        competent_authority=authority,
        contacts=_contacts(code, profile),
        capabilities=_capabilities(code, profile, coastal, abroad, must),
        transport=transport,
        sharing=sharing,
    )


_MOI = "Ministry of the Interior"

# --------------------------------------------------------------------------
# Units (all names and codes are fictional)
# --------------------------------------------------------------------------

# fmt: off
UNITS: tuple[DemoUnit, ...] = (
    _unit(
        "AT-ADLER", "Special Intervention Command Adler",
        ("Vienna", 48.2082, 16.3738), ("de", "en"),
        "Federal Ministry of the Interior", "medium", False,
        (_heli(2), _armour(2)),
        _mixed(("DE", "CH", "IT", "SI", "HU", "SK", "CZ")),
        must=("rope_access", "helicopter_insertion"),
    ),
    _unit(
        "BE-HERMELIJN", "Federal Special Intervention Group Hermelijn",
        ("Brussels", 50.8503, 4.3517), ("nl", "fr", "de", "en"),
        "Federal Public Service Home Affairs", "medium", True,
        (_heli(1), _armour(2), _boat(1)),
        _generous(("NL", "FR", "DE", "LU")),
    ),
    _unit(
        "BE-STEENUIL", "Regional Intervention Team Steenuil",
        ("Antwerp", 51.2194, 4.4025), ("nl", "fr", "en"),
        "Federal Public Service Home Affairs", "small", True,
        (_boat(1),),
        _mixed(("NL", "FR", "DE", "LU"), ("BE-HERMELIJN", "NL-MEEUW")),
    ),
    _unit(
        "BG-ORLIK", "Specialised Counter-Terrorist Detachment Orlik",
        ("Sofia", 42.6977, 23.3219), ("bg", "en"),
        _MOI, "medium", True,
        (_heli(1), _armour(3)),
        _strict(),
    ),
    _unit(
        "HR-KUNA", "Special Police Intervention Unit Kuna",
        ("Zagreb", 45.8150, 15.9819), ("hr", "en", "de"),
        _MOI, "medium", True,
        (_heli(1), _armour(2), _boat(2)),
        _generous(("SI", "HU", "AT", "IT")),
    ),
    _unit(
        "CY-KYKNOS", "Rapid Response Team Kyknos",
        ("Nicosia", 35.1856, 33.3823), ("el", "en"),
        "Ministry of Justice and Public Order", "small", True,
        (_boat(1),),
        _strict(),
        abroad="armed",
    ),
    _unit(
        "CZ-SOVA", "Rapid Intervention Unit Sova",
        ("Prague", 50.0755, 14.4378), ("cs", "en", "de"),
        _MOI, "medium", False,
        (_heli(2), _armour(2)),
        _generous(("SK", "AT", "DE", "PL")),
    ),
    _unit(
        "DK-ODDER", "National Tactical Team Odder",
        ("Copenhagen", 55.6761, 12.5683), ("da", "en"),
        "Ministry of Justice", "medium", True,
        (_heli(1), _armour(1), _boat(2)),
        _generous(("SE", "NO", "DE", "FI", "IS")),
    ),
    _unit(
        "EE-KOTKAS", "Special Operations Group Kotkas",
        ("Tallinn", 59.4370, 24.7536), ("et", "en"),
        _MOI, "small", True,
        (_boat(1),),
        _generous(("LV", "LT", "FI")),
    ),
    _unit(
        "FI-AHMA", "Rapid Response Unit Ahma",
        ("Helsinki", 60.1699, 24.9384), ("fi", "sv", "en"),
        _MOI, "medium", True,
        (_heli(2), _armour(1), _boat(1)),
        _strict(),
        must=("open_terrain",),
    ),
    _unit(
        "FR-MARTINET", "National Intervention Force Martinet",
        ("Paris", 48.8566, 2.3522), ("fr", "en"),
        _MOI, "large", True,
        (_heli(4, heavy=True), _plane(1, large=True), _armour(6), _boat(2)),
        _mixed(
            ("BE", "DE", "LU", "CH", "IT", "ES"),
            ("DE-FALKE", "ES-ALCOTAN", "IT-LUPO"),
        ),
    ),
    _unit(
        "FR-CIGOGNE", "Regional Intervention Unit Cigogne",
        ("Strasbourg", 48.5734, 7.7521), ("fr", "de", "en"),
        _MOI, "medium", False,
        (_heli(1), _armour(2)),
        _generous(("DE", "CH", "LU", "BE")),
    ),
    _unit(
        "FR-GOELAND", "Mediterranean Intervention Unit Goéland",
        ("Marseille", 43.2965, 5.3698), ("fr", "en", "it"),
        _MOI, "medium", True,
        (_heli(1), _armour(2), _boat(2, large=True)),
        _mixed(("IT", "ES", "MT", "CH")),
    ),
    _unit(
        "DE-FALKE", "Federal Tactical Intervention Group Falke",
        ("Berlin", 52.5200, 13.4050), ("de", "en"),
        "Federal Ministry of the Interior", "large", True,
        (_heli(4, heavy=True), _plane(2), _armour(8), _boat(2, large=True)),
        _generous(("AT", "CH", "NL", "BE", "LU", "FR", "DK", "PL", "CZ")),
        must=("parachute_insertion", "helicopter_insertion"),
    ),
    _unit(
        "DE-HABICHT", "State Special Operations Command Habicht",
        ("Munich", 48.1351, 11.5820), ("de", "en"),
        "State Ministry of the Interior (Bavaria)", "large", False,
        (_heli(3), _armour(4)),
        _mixed(("AT", "CH", "CZ", "IT"), ("AT-ADLER", "CH-GEMSE")),
        abroad="armed",
        must=("rope_access",),
    ),
    _unit(
        "DE-KRANICH", "Northern Special Intervention Unit Kranich",
        ("Hamburg", 53.5511, 9.9937), ("de", "en", "da"),
        "State Ministry of the Interior (Hamburg)", "medium", True,
        (_heli(1), _armour(2), _boat(2)),
        _strict(),
        abroad="armed",
    ),
    _unit(
        "GR-ALKYONI", "Special Counter-Terrorism Team Alkyoni",
        ("Athens", 37.9838, 23.7275), ("el", "en"),
        "Ministry of Citizen Protection", "large", True,
        (_heli(2, heavy=True), _armour(4), _boat(3, large=True)),
        _mixed(("CY", "BG", "IT")),
    ),
    _unit(
        "GR-PELARGOS", "Northern Greece Intervention Unit Pelargos",
        ("Thessaloniki", 40.6401, 22.9444), ("el", "en"),
        "Ministry of Citizen Protection", "small", True,
        (_armour(1), _boat(1)),
        _generous(("BG", "CY")),
    ),
    _unit(
        "HU-SOLYOM", "Counter-Terrorism Intervention Unit Sólyom",
        ("Budapest", 47.4979, 19.0402), ("hu", "en", "de"),
        _MOI, "medium", False,
        (_heli(2), _armour(3)),
        _strict(),
    ),
    _unit(
        "IE-CORR", "Armed Support and Intervention Unit Corr",
        ("Dublin", 53.3498, -6.2603), ("en", "ga"),
        "Department of Justice", "medium", True,
        (_heli(1), _boat(1)),
        _mixed(("GB", "FR")),
        abroad="unarmed",
    ),
    _unit(
        "IT-LUPO", "Central Special Operations Unit Lupo",
        ("Rome", 41.9028, 12.4964), ("it", "en"),
        _MOI, "large", True,
        (_heli(3, heavy=True), _plane(1, large=True), _armour(6), _boat(2)),
        _generous(("FR", "CH", "AT", "SI", "MT")),
        must=("parachute_insertion",),
    ),
    _unit(
        "IT-ASTORE", "Northern Intervention Group Astore",
        ("Milan", 45.4642, 9.1900), ("it", "en", "de"),
        _MOI, "medium", False,
        (_heli(1), _armour(2)),
        _mixed(("CH", "FR", "AT"), ("CH-BARTGEIER",)),
    ),
    _unit(
        "IT-DELFINO", "Maritime Special Intervention Unit Delfino",
        ("Naples", 40.8518, 14.2681), ("it", "en"),
        _MOI, "medium", True,
        (_heli(1), _boat(3, large=True), _boat(4)),
        _strict(),
        must=("maritime", "combat_diving"),
    ),
    _unit(
        "LV-VANAGS", "Special Tasks Unit Vanags",
        ("Riga", 56.9496, 24.1052), ("lv", "en"),
        _MOI, "small", True,
        (_armour(1),),
        _strict(),
    ),
    _unit(
        "LT-VILKAS", "Counter-Terrorism Operations Unit Vilkas",
        ("Vilnius", 54.6872, 25.2797), ("lt", "en", "pl"),
        _MOI, "medium", True,
        (_heli(1), _armour(2)),
        _mixed(("LV", "PL", "EE")),
    ),
    _unit(
        "LU-FUUSS", "Police Special Intervention Unit Fuuss",
        ("Luxembourg", 49.6116, 6.1319), ("lb", "fr", "de", "en"),
        "Ministry of Internal Security", "small", False,
        (),
        _generous(("BE", "FR", "DE"), ("BE-HERMELIJN", "FR-CIGOGNE", "DE-FALKE")),
        abroad="armed",
    ),
    _unit(
        "MT-FALKUN", "Special Assignment Team Falkun",
        ("Valletta", 35.8989, 14.5146), ("mt", "en"),
        "Ministry for Home Affairs", "small", True,
        (_boat(2),),
        _mixed(("IT", "CY")),
        abroad="unarmed",
    ),
    _unit(
        "NL-REIGER", "National Special Interventions Team Reiger",
        ("Utrecht", 52.0907, 5.1214), ("nl", "en", "de"),
        "Ministry of Justice and Security", "large", True,
        (_heli(3), _armour(5), _boat(2, large=True), _boat(4)),
        _strict(existence="network"),
        must=("helicopter_insertion",),
    ),
    _unit(
        "NL-MEEUW", "Regional Arrest Team Meeuw",
        ("Rotterdam", 51.9244, 4.4777), ("nl", "en"),
        "Ministry of Justice and Security", "medium", True,
        (_armour(2), _boat(2)),
        _generous(("BE", "DE", "LU")),
    ),
    _unit(
        "PL-ZUBR", "Central Counter-Terrorism Unit Żubr",
        ("Warsaw", 52.2297, 21.0122), ("pl", "en"),
        "Ministry of the Interior and Administration", "large", True,
        (_heli(3, heavy=True), _plane(1, large=True), _armour(6)),
        _mixed(("DE", "CZ", "SK", "LT")),
        must=("parachute_insertion",),
    ),
    _unit(
        "PL-KORMORAN", "Coastal Intervention Unit Kormoran",
        ("Gdańsk", 54.3520, 18.6466), ("pl", "en", "de"),
        "Ministry of the Interior and Administration", "medium", True,
        (_heli(1), _armour(1), _boat(2)),
        _mixed(("DE", "LT", "SE", "DK")),
    ),
    _unit(
        "PT-MILHAFRE", "Special Operations Group Milhafre",
        ("Lisbon", 38.7223, -9.1393), ("pt", "en", "es"),
        "Ministry of Internal Administration", "medium", True,
        (_heli(1), _armour(2), _boat(1)),
        _mixed(("ES", "FR")),
    ),
    _unit(
        "RO-ZIMBRU", "Special Intervention Brigade Zimbru",
        ("Bucharest", 44.4268, 26.1025), ("ro", "en", "fr"),
        "Ministry of Internal Affairs", "medium", True,
        (_heli(2), _armour(3)),
        _strict(),
    ),
    _unit(
        "SK-KAMZIK", "Rapid Deployment Unit Kamzík",
        ("Bratislava", 48.1486, 17.1077), ("sk", "cs", "en"),
        _MOI, "small", False,
        (_armour(1),),
        _generous(("CZ", "AT", "HU", "PL")),
    ),
    _unit(
        "SI-KOZOROG", "Special Police Unit Kozorog",
        ("Ljubljana", 46.0569, 14.5058), ("sl", "en", "it"),
        _MOI, "small", True,
        (_heli(1),),
        _mixed(("AT", "IT", "HR", "HU"), ("AT-ADLER", "HR-KUNA")),
        must=("rope_access",),
    ),
    _unit(
        "ES-ALCOTAN", "National Special Operations Group Alcotán",
        ("Madrid", 40.4168, -3.7038), ("es", "en"),
        _MOI, "large", True,
        (_heli(4, heavy=True), _plane(1, large=True), _armour(6), _boat(2)),
        _generous(("PT", "FR")),
        must=("parachute_insertion",),
    ),
    _unit(
        "ES-AZOR", "Northeastern Intervention Group Azor",
        ("Barcelona", 41.3874, 2.1686), ("es", "ca", "en", "fr"),
        _MOI, "medium", True,
        (_heli(1), _armour(2), _boat(1)),
        _mixed(("FR", "PT")),
    ),
    _unit(
        "ES-CHARRAN", "Maritime Intervention Unit Charrán",
        ("Algeciras", 36.1408, -5.4562), ("es", "en"),
        _MOI, "medium", True,
        (_heli(1), _boat(2, large=True), _boat(3)),
        _strict(),
        must=("maritime", "combat_diving"),
    ),
    _unit(
        "SE-VARG", "National Task Force Varg",
        ("Stockholm", 59.3293, 18.0686), ("sv", "en"),
        "Ministry of Justice", "large", True,
        (_heli(3, heavy=True), _plane(1), _armour(4), _boat(2, large=True)),
        _generous(("NO", "DK", "FI", "IS", "EE")),
    ),
    _unit(
        "SE-HAVSORN", "Western Region Intervention Unit Havsörn",
        ("Gothenburg", 57.7089, 11.9746), ("sv", "en"),
        "Ministry of Justice", "medium", True,
        (_armour(1), _boat(2)),
        _mixed(("NO", "DK")),
    ),
    _unit(
        "NO-JERV", "National Emergency Response Unit Jerv",
        ("Oslo", 59.9139, 10.7522), ("no", "en"),
        "Ministry of Justice and Public Security", "large", True,
        (_heli(3), _plane(1), _armour(3), _boat(2, large=True)),
        _generous(("SE", "DK", "FI", "IS")),
        must=("open_terrain", "helicopter_insertion"),
    ),
    _unit(
        "NO-SKARV", "Western Intervention Team Skarv",
        ("Bergen", 60.3913, 5.3221), ("no", "en"),
        "Ministry of Justice and Public Security", "small", True,
        (_boat(2),),
        _strict(),
    ),
    _unit(
        "IS-HRAFN", "Special Response Unit Hrafn",
        ("Reykjavík", 64.1466, -21.9426), ("is", "en", "da"),
        "Ministry of Justice", "small", True,
        (_boat(1),),
        _generous(("NO", "DK", "SE")),
        abroad="armed",
    ),
    _unit(
        "CH-GEMSE", "Federal Intervention Group Gemse",
        ("Bern", 46.9480, 7.4474), ("de", "fr", "it", "en"),
        "Federal Department of Justice and Police", "medium", False,
        (_heli(2), _armour(2)),
        _mixed(("DE", "AT", "FR", "IT", "LI"), ("DE-HABICHT",)),
        abroad="armed",
        must=("rope_access", "helicopter_insertion"),
    ),
    _unit(
        "CH-BARTGEIER", "Cantonal Special Intervention Unit Bartgeier",
        ("Zurich", 47.3769, 8.5417), ("de", "en"),
        "Cantonal Security Directorate (Zurich)", "medium", False,
        (_armour(2),),
        _strict(),
        abroad="none",
    ),
    _unit(
        "GB-KESTREL", "Metropolitan Counter-Terrorism Intervention Unit Kestrel",
        ("London", 51.5072, -0.1276), ("en",),
        "Home Office", "large", True,
        (_heli(3), _plane(1), _armour(6), _boat(2)),
        _mixed(("IE", "FR", "BE", "NL")),
    ),
    _unit(
        "GB-OSPREY", "Scottish Tactical Firearms Unit Osprey",
        ("Glasgow", 55.8642, -4.2518), ("en",),
        "Scottish Government Justice Directorate", "medium", True,
        (_heli(1), _armour(1), _boat(1)),
        _mixed(("IE", "NO")),
    ),
)
# fmt: on


def unit_by_code(code: str) -> DemoUnit:
    for unit in UNITS:
        if unit.code == code:
            return unit
    raise KeyError(code)


def check() -> list[str]:
    """Return a list of consistency problems (empty when the data is sound)."""
    problems: list[str] = []
    if len(CAPABILITY_CODES) != len(set(CAPABILITY_CODES)):
        problems.append("duplicate capability codes")
    iso = [c.iso2 for c in COUNTRIES]
    if len(iso) != len(set(iso)):
        problems.append("duplicate country codes")
    country_set = set(iso)
    for c in COUNTRIES:
        if c.status not in ("eu", "associated", "other"):
            problems.append(f"{c.iso2}: unknown status {c.status!r}")
    codes = [u.code for u in UNITS]
    seen: set[str] = set()
    for code in codes:
        if code in seen:
            problems.append(f"duplicate unit code {code}")
        seen.add(code)
    cap_set = set(CAPABILITY_CODES)
    for u in UNITS:
        p = u.code
        if u.code != u.code.upper() or not u.code.startswith(f"{u.country}-"):
            problems.append(f"{p}: code must be uppercase with country prefix")
        if u.country not in country_set:
            problems.append(f"{p}: unknown country {u.country}")
        if not (-90 <= u.latitude <= 90 and -180 <= u.longitude <= 180):
            problems.append(f"{p}: coordinates out of range")
        if not 2 <= len(u.contacts) <= 3:
            problems.append(f"{p}: expected 2-3 contacts")
        for contact in u.contacts:
            if contact.kind not in ("phone", "email", "radio"):
                problems.append(f"{p}: unknown contact kind {contact.kind}")
        if not 8 <= len(u.capabilities) <= 20:
            problems.append(f"{p}: expected 8-20 capabilities")
        types = [cap.type_code for cap in u.capabilities]
        if len(types) != len(set(types)):
            problems.append(f"{p}: duplicate capability type")
        for cap in u.capabilities:
            if cap.type_code not in cap_set:
                problems.append(f"{p}: unknown capability {cap.type_code}")
            if not 0 <= cap.level <= 3:
                problems.append(f"{p}: level out of range for {cap.type_code}")
            if cap.last_validated is not None and cap.last_validated > _TODAY:
                problems.append(f"{p}: validation in the future ({cap.type_code})")
            if not 0 <= cap.confirmed_days_ago <= 200:
                problems.append(f"{p}: confirmed_days_ago out of range")
        if len(u.transport) > 4:
            problems.append(f"{p}: more than 4 transport entries")
        for t in u.transport:
            if t.kind not in _TRANSPORT_KINDS:
                problems.append(f"{p}: unknown transport kind {t.kind}")
        s = u.sharing
        if set(s.audiences) != set(_FIELD_GROUPS):
            problems.append(f"{p}: sharing must cover exactly {_FIELD_GROUPS}")
        for group, audience in s.audiences.items():
            if audience not in _AUDIENCES:
                problems.append(f"{p}: unknown audience {audience!r} for {group}")
        uses_list = "listed" in s.audiences.values()
        if uses_list and not (s.listed_countries or s.listed_units):
            problems.append(f"{p}: audience 'listed' without any list")
        for lc in s.listed_countries:
            if lc not in country_set:
                problems.append(f"{p}: listed country {lc} unknown")
        for lu in s.listed_units:
            if lu not in seen:
                problems.append(f"{p}: listed unit {lu} unknown")
    if len(UNITS) < 40:
        problems.append(f"only {len(UNITS)} units (need >= 40)")
    with_units = {u.country for u in UNITS}
    if len(with_units) < 31:
        problems.append(f"only {len(with_units)} countries with units (need >= 31)")
    for c in COUNTRIES:
        if c.iso2 not in with_units and c.iso2 not in _NO_UNIT_COUNTRIES:
            problems.append(f"{c.iso2}: no unit")
    return problems
