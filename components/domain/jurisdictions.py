"""Jurisdiction codes: ISO 3166-1 alpha-2 countries and the aliases policies may use.

Pure data. The country list is the 249 officially assigned ISO 3166-1 alpha-2 codes
(copied from tzdata's iso3166.tab), so a typo such as "UK" (ISO: GB) is caught.
"""

from __future__ import annotations

ISO_3166_ALPHA2: frozenset[str] = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO
    BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ
    DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP
    GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG
    KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML
    MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE
    PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL
    SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM
    US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split()
)

# The 27 EU member states (ISO codes; Greece is GR, not EL).
EU_MEMBERS: frozenset[str] = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR IE IT LV LT LU MT NL PL PT RO SK SI ES SE HU".split()
)
# European Economic Area = EU + Iceland, Liechtenstein, Norway.
EEA_MEMBERS: frozenset[str] = EU_MEMBERS | {"IS", "LI", "NO"}

# Aliases a policy rule may name instead of single countries.
ALIASES: dict[str, frozenset[str]] = {"EU": EU_MEMBERS, "EEA": EEA_MEMBERS}


def is_country(code: str) -> bool:
    """True for an assigned ISO 3166-1 alpha-2 code (upper case)."""
    return code in ISO_3166_ALPHA2


def expand(code: str) -> frozenset[str]:
    """The countries a rule's jurisdiction entry stands for ("EU" -> 27 codes, "DE" -> {"DE"})."""
    return ALIASES.get(code, frozenset({code}))


def matches(country: str, entry: str) -> bool:
    """True when a site in `country` falls under the rule entry `entry` (country or alias)."""
    return country in expand(entry)
