"""The three spaces of the network and its ten participation tools (slug → French label)."""

from __future__ import annotations

from enum import StrEnum


class Space(StrEnum):
    TERRITOIRES = "territoires"
    LOI = "loi"
    IDEES = "idees"


class Tool(StrEnum):
    CONSULTATION = "consultation"
    QUESTIONNAIRE = "questionnaire"
    BOITE_A_IDEES = "boite_a_idees"
    DEBAT = "debat"
    VOTATION = "votation"
    CARTE_PARTICIPATIVE = "carte_participative"
    MISE_EN_RELATION = "mise_en_relation"
    PETITION = "petition"
    APPEL_A_PROJETS = "appel_a_projets"
    BUDGET_PARTICIPATIF = "budget_participatif"


TOOL_LABELS: dict[Tool, str] = {
    Tool.CONSULTATION: "Consultation",
    Tool.QUESTIONNAIRE: "Questionnaire",
    Tool.BOITE_A_IDEES: "Boîte à idées",
    Tool.DEBAT: "Débat",
    Tool.VOTATION: "Votation",
    Tool.CARTE_PARTICIPATIVE: "Carte participative",
    Tool.MISE_EN_RELATION: "Mise en relation",
    Tool.PETITION: "Pétition",
    Tool.APPEL_A_PROJETS: "Appel à projets",
    Tool.BUDGET_PARTICIPATIF: "Budget participatif",
}
