"""Reasons in French, produced from the features that actually scored.

A feature gives a reason when its contribution to the score is at least ``min_contribution``
(the reason states a fact of that feature: the commune's name, the distance, the theme);
reasons come in decreasing contribution, three at most.
"""

from __future__ import annotations

import numpy as np

from contracts.catalog import Tool
from contracts.spaces import TOOL_LABELS
from contracts.themes import THEME_LABELS, Theme
from recommender.facts import Items
from recommender.features import FEATURES

MAX_REASONS = 3

_PLACE = {
    "level:commune": ("commune", "Concerne votre commune, {}"),
    "level:arrondissement": ("arrondissement", "Concerne votre arrondissement, {}"),
    "level:area": ("commune", "Concerne un secteur de votre commune, {}"),
    "level:radius": ("commune", "Concerne les environs de votre commune, {}"),
    "level:epci": ("epci", "Concerne votre intercommunalité, {}"),
    "level:epci_xxl": ("epci", "Concerne votre intercommunalité, {}"),
    "level:departement": ("departement", "Concerne votre département, {}"),
    "level:region": ("region", "Concerne votre région, {}"),
}


def french_km(km: float) -> str:
    """A distance as a French reader writes it: "800 m", "2,3 km", "15 km"."""
    if km < 1.0:
        return f"{max(int(round(km * 1000, -1)), 10)} m"
    if km < 10.0:
        return f"{km:.1f}".replace(".", ",") + " km"
    return f"{round(km):d} km"


def _theme_label(slug: str) -> str:
    try:
        label = THEME_LABELS[Theme(slug)]
    except ValueError:
        label = slug
    return label[0].lower() + label[1:]


def _closing(days: float) -> str:
    whole = int(np.ceil(days))
    if whole <= 0:
        return "Se termine aujourd'hui"
    if whole == 1:
        return "Se termine demain"
    return f"Se termine dans {whole} jours"


def reasons(
    items: Items,
    item: int,
    contributions: np.ndarray,
    *,
    place_names: dict[str, str],
    distance_km: float,
    interests: np.ndarray,
    co_participated_title: str | None,
    min_contribution: float,
) -> list[str]:
    """The French reasons of one recommendation: ``contributions`` (F,) in FEATURES order;
    ``interests`` bool (T,) the user's declared themes; ``co_participated_title`` the project
    of the user's history most similar to this one, if any."""
    order = np.argsort(-contributions, kind="stable")
    out: list[str] = []
    for f in order:
        if contributions[f] < min_contribution or len(out) == MAX_REASONS:
            break
        text = _reason(
            FEATURES[f], items, item, place_names, distance_km, interests, co_participated_title
        )
        if text and text not in out:
            out.append(text)
    return out


def _reason(
    name: str,
    items: Items,
    item: int,
    place_names: dict[str, str],
    distance_km: float,
    interests: np.ndarray,
    co_title: str | None,
) -> str | None:
    if name in _PLACE:
        level, template = _PLACE[name]
        place = place_names.get(level)
        return template.format(place) if place else None
    if name == "level:national":
        return "Concerne toute la France"
    if name in ("proximity", "proximity_wide") and np.isfinite(distance_km):
        return f"À {french_km(distance_km)} de chez vous"
    if name == "interest_declared":
        shared = [
            t for t, on in zip(items.theme_names, items.themes[item] & interests, strict=True) if on
        ]
        return f"Correspond à votre intérêt : {_theme_label(shared[0])}" if shared else None
    if name == "interest_learned":
        return "Proche des projets auxquels vous avez participé"
    if name == "co_participation" and co_title:
        return f"Les participants à « {co_title} » y participent aussi"
    if name == "followed":
        return "Proposé par une organisation que vous suivez"
    if name == "popularity":
        return "Mobilise beaucoup d'habitants au regard de son territoire"
    if name == "freshness":
        return "Nouveau"
    if name == "closing_soon":
        return _closing(float(items.closes_in_days[item]))
    if name == "theme_affinity":
        return "Sur les thèmes des projets auxquels vous avez participé"
    if name == "place_affinity":
        return "Concerne un territoire où vous participez déjà"
    if name == "tool_affinity":
        tool = items.tool[item]
        label = TOOL_LABELS.get(Tool(tool), tool) if tool in Tool.__members__.values() else tool
        return f"Un format auquel vous participez souvent : {label.lower()}"
    return None
