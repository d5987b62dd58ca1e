"""The IANA time zone of every commune: alerts and digests are timed by it.

Metropolitan France, Corsica and most overseas territories keep one zone each. Two territories
span several zones, and there the zone is the commune's own:

- Polynésie française (987): the Marquesas (UTC−09:30, ``Pacific/Marquesas``), the Gambier
  Islands (UTC−09:00, ``Pacific/Gambier``), every other archipelago ``Pacific/Tahiti``
  (UTC−10:00). These are the three PF zones of IANA's ``zone1970.tab``, whose comments name
  the archipelagos.
- Terres australes et antarctiques françaises (984): each district is a commune of its own, and
  IANA gives them different zones: Kerguelen, Saint-Paul and Amsterdam ``Indian/Kerguelen``
  (UTC+05:00), Crozet ``Asia/Dubai`` (UTC+04:00, "Crozet" in ``zone1970.tab``), Terre Adélie
  ``Antarctica/DumontDUrville`` (UTC+10:00, the station's zone). The Îles Éparses lie in the
  Mozambique Channel (Europa, Bassas da India, Juan de Nova, Glorieuses: UTC+03:00) and IANA
  names no zone there: their district takes ``Indian/Mayotte``, the zone of the neighbouring
  French territory at that offset.

The commune polygons of the data set cover metropolitan France and the DROM only (one zone per
territory); the collectivités d'outre-mer have no outline, so their zone cannot be computed from
a location at load time. The per-commune table below is therefore the source, and the tests
check it, commune by commune, against real time-zone polygons (``tzfpy``) and IANA's tables.
Clipperton (989) is uninhabited and has no IANA country: ``Etc/GMT+8`` (UTC−08:00).
"""

from __future__ import annotations

# The zone of a territory (département or collectivité code) when it has only one.
TERRITORY_ZONE = {
    "971": "America/Guadeloupe",
    "972": "America/Martinique",
    "973": "America/Cayenne",
    "974": "Indian/Reunion",
    "975": "America/Miquelon",
    "976": "Indian/Mayotte",
    "977": "America/St_Barthelemy",
    "978": "America/Marigot",
    "984": "Indian/Kerguelen",  # the TAAF, by district below
    "986": "Pacific/Wallis",
    "987": "Pacific/Tahiti",  # Polynésie française, but for the communes below
    "988": "Pacific/Noumea",
    "989": "Etc/GMT+8",  # Clipperton: no IANA zone, UTC-8
}
METROPOLITAN_ZONE = "Europe/Paris"

# Communes of a territory that spans zones, whose zone is not the territory's first one.
COMMUNE_ZONE = {
    # Polynésie française: the six communes of the Marquesas, and the Gambier.
    "98718": "Pacific/Marquesas",  # Fatu-Hiva
    "98723": "Pacific/Marquesas",  # Hiva-Oa
    "98731": "Pacific/Marquesas",  # Nuku-Hiva
    "98746": "Pacific/Marquesas",  # Tahuata
    "98756": "Pacific/Marquesas",  # Ua-Huka
    "98757": "Pacific/Marquesas",  # Ua-Pou
    "98719": "Pacific/Gambier",  # Gambier (Mangareva)
    # Terres australes et antarctiques françaises, by district.
    "98411": "Indian/Kerguelen",  # Îles Saint-Paul et Nouvelle-Amsterdam
    "98412": "Indian/Kerguelen",  # Archipel des Kerguelen
    "98413": "Asia/Dubai",  # Archipel des Crozet
    "98414": "Antarctica/DumontDUrville",  # La Terre-Adélie
    "98415": "Indian/Mayotte",  # Îles Éparses de l'océan Indien
}

# The ISO 3166 code under which IANA's zone.tab / zone1970.tab list each territory's zones
# (Terre Adélie is listed under Antarctica, AQ; Clipperton under none).
TERRITORY_COUNTRY = {
    "971": "GP",
    "972": "MQ",
    "973": "GF",
    "974": "RE",
    "975": "PM",
    "976": "YT",
    "977": "BL",
    "978": "MF",
    "984": "TF",
    "986": "WF",
    "987": "PF",
    "988": "NC",
}


def commune_zone(code: str, departement: str) -> str:
    """The IANA zone of the commune ``code`` of territory ``departement``."""
    return COMMUNE_ZONE.get(code) or TERRITORY_ZONE.get(departement, METROPOLITAN_ZONE)
