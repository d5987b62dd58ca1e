"""The themes taxonomy shared by users' interests and projects (slug → French label)."""

from __future__ import annotations

from enum import StrEnum


class Theme(StrEnum):
    MOBILITE = "mobilite"
    ENVIRONNEMENT = "environnement"
    URBANISME = "urbanisme"
    LOGEMENT = "logement"
    EDUCATION = "education"
    SANTE = "sante"
    CULTURE = "culture"
    SPORT = "sport"
    SOLIDARITE = "solidarite"
    ECONOMIE = "economie"
    EMPLOI = "emploi"
    SECURITE = "securite"
    DEMOCRATIE = "democratie"
    NUMERIQUE = "numerique"
    AGRICULTURE = "agriculture"
    JEUNESSE = "jeunesse"


THEME_LABELS: dict[Theme, str] = {
    Theme.MOBILITE: "Mobilité et transports",
    Theme.ENVIRONNEMENT: "Environnement et climat",
    Theme.URBANISME: "Urbanisme et cadre de vie",
    Theme.LOGEMENT: "Logement",
    Theme.EDUCATION: "Éducation",
    Theme.SANTE: "Santé",
    Theme.CULTURE: "Culture et patrimoine",
    Theme.SPORT: "Sport et loisirs",
    Theme.SOLIDARITE: "Solidarité et action sociale",
    Theme.ECONOMIE: "Économie et commerce",
    Theme.EMPLOI: "Emploi et formation",
    Theme.SECURITE: "Sécurité et tranquillité publique",
    Theme.DEMOCRATIE: "Démocratie et vie citoyenne",
    Theme.NUMERIQUE: "Numérique",
    Theme.AGRICULTURE: "Agriculture et alimentation",
    Theme.JEUNESSE: "Jeunesse",
}
