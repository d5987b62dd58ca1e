// The growth team's dashboard (GET /growth): the report of one experiment or of everyone
// (GET /v1/growth/report, contracts/growth.py Report) drawn with Chart.js, and the participation
// rate by commune or EPCI (GET /v1/growth/areas) drawn on the engine's own tiles with MapLibre.
// Every request goes to this origin; the staff session is the HttpOnly cookie the browser sends.
// Each chart has a caption and a visually hidden table holding the same figures.
(function () {
  "use strict";

  const ORIGIN = window.location.origin;
  const FRANCE = [[-5.3, 41.3], [9.7, 51.15]];
  const COMMUNE_MIN_ZOOM = 9;
  // Enough contrast against white, and told apart by more than hue in the tables.
  const PALETTE = ["#0f5e57", "#b45309", "#6d28d9", "#be185d", "#1d4ed8", "#4d7c0f"];
  const FUNNEL_STEPS = [
    ["sent", "Envoyés"],
    ["opened", "Ouverts"],
    ["clicked", "Cliqués"],
    ["participated", "Participations"],
  ];
  const DAILY_LABELS = {
    sent: "Mails envoyés",
    opened: "Mails ouverts",
    clicked: "Clics",
    participated: "Participations",
    unsubscribed: "Désinscriptions",
  };
  const METRIC_LABELS = {
    open_rate: "taux d’ouverture",
    click_rate: "taux de clic",
    participation_rate: "taux de participation",
    any_participation_rate: "taux de participation toutes origines",
    unsubscribe_rate: "taux de désinscription",
    return_7d: "retour à 7 jours",
    return_30d: "retour à 30 jours",
  };
  // Participation rate classes of the choropleth (upper bounds, as proportions).
  const CLASSES = [
    [0.02, "#edf8fb", "moins de 2 %"],
    [0.05, "#b3cde3", "2 à 5 %"],
    [0.1, "#8c96c6", "5 à 10 %"],
    [0.2, "#8856a7", "10 à 20 %"],
    [Infinity, "#810f7c", "20 % et plus"],
  ];
  const NO_DATA = "#e4e7eb";

  const experimentSelect = document.getElementById("experiment");
  const dailySelect = document.getElementById("daily-metric");
  const statusLine = document.getElementById("status");
  const mapError = document.getElementById("map-error");

  const numberFr = new Intl.NumberFormat("fr-FR");
  const percentFr = new Intl.NumberFormat("fr-FR", { style: "percent", maximumFractionDigits: 1 });
  const pointsFr = new Intl.NumberFormat("fr-FR", {
    maximumFractionDigits: 2,
    signDisplay: "exceptZero",
  });
  const pValueFr = new Intl.NumberFormat("fr-FR", { maximumSignificantDigits: 2 });
  const dayFr = new Intl.DateTimeFormat("fr-FR", { day: "2-digit", month: "2-digit", timeZone: "UTC" });
  const instantFr = new Intl.DateTimeFormat("fr-FR", {
    dateStyle: "long",
    timeStyle: "short",
    timeZone: "Europe/Paris",
  });

  if (window.Chart) {
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = "#1f2933";
    Chart.defaults.locale = "fr-FR";
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;
  }

  function rate(value) {
    return value === null || value === undefined ? "—" : percentFr.format(value);
  }

  function points(value) {
    return value === null || value === undefined ? "—" : pointsFr.format(value * 100) + " pts";
  }

  function dayLabel(isoDay) {
    return dayFr.format(new Date(isoDay + "T00:00:00Z"));
  }

  function variantLabel(name) {
    return name === "tous" ? "Tous les utilisateurs" : name;
  }

  // ------------------------------------------------------------------ tables (text alternatives)

  function fillTable(table, caption, headers, rows) {
    table.replaceChildren();
    const cap = document.createElement("caption");
    cap.textContent = caption;
    table.appendChild(cap);
    const head = table.createTHead().insertRow();
    headers.forEach(function (h) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = h;
      head.appendChild(th);
    });
    const body = table.createTBody();
    rows.forEach(function (cells) {
      const row = body.insertRow();
      cells.forEach(function (value, i) {
        const cell = i === 0 ? document.createElement("th") : document.createElement("td");
        if (i === 0) cell.scope = "row";
        cell.textContent = value;
        row.appendChild(cell);
      });
    });
  }

  // ------------------------------------------------------------------ charts

  const charts = {};

  function draw(id, config) {
    if (charts[id]) charts[id].destroy();
    charts[id] = new Chart(document.getElementById(id), config);
    return charts[id];
  }

  function drawFunnel(report) {
    const datasets = report.variants.map(function (v, i) {
      return {
        label: variantLabel(v.variant),
        data: FUNNEL_STEPS.map(function (step) { return v.funnel[step[0]]; }),
        backgroundColor: PALETTE[i % PALETTE.length],
      };
    });
    draw("funnel-chart", {
      type: "bar",
      data: { labels: FUNNEL_STEPS.map(function (s) { return s[1]; }), datasets: datasets },
      options: {
        scales: { y: { beginAtZero: true, title: { display: true, text: "Nombre" } } },
        plugins: { legend: { position: "bottom" } },
      },
    });
    fillTable(
      document.getElementById("funnel-table"),
      "Entonnoir par variante",
      ["Variante", "Unités", "Envoyés", "Ouverts", "Cliqués", "Participations", "Désinscriptions",
        "Taux d’ouverture", "Taux de clic", "Taux de participation"],
      report.variants.map(function (v) {
        const f = v.funnel;
        return [variantLabel(v.variant) + (v.holdout ? " (holdout)" : ""), numberFr.format(v.units),
          numberFr.format(f.sent), numberFr.format(f.opened), numberFr.format(f.clicked),
          numberFr.format(f.participated), numberFr.format(f.unsubscribed),
          rate(v.open_rate.rate), rate(v.click_rate.rate), rate(v.participation_rate.rate)];
      }),
    );
  }

  function drawDaily(report) {
    const metric = dailySelect.value;
    const days = Array.from(new Set(report.daily.map(function (p) { return p.day; }))).sort();
    const names = report.variants.map(function (v) { return v.variant; });
    const value = {};
    report.daily.forEach(function (p) { value[p.variant + "|" + p.day] = p[metric]; });
    draw("daily-chart", {
      type: "line",
      data: {
        labels: days.map(dayLabel),
        datasets: names.map(function (name, i) {
          return {
            label: variantLabel(name),
            data: days.map(function (d) { return value[name + "|" + d] || 0; }),
            borderColor: PALETTE[i % PALETTE.length],
            backgroundColor: PALETTE[i % PALETTE.length],
            pointStyle: ["circle", "rect", "triangle", "rectRot", "star", "cross"][i % 6],
            tension: 0,
          };
        }),
      },
      options: {
        scales: {
          y: { beginAtZero: true, title: { display: true, text: DAILY_LABELS[metric] } },
          x: { title: { display: true, text: "Jour" } },
        },
        plugins: { legend: { position: "bottom" } },
      },
    });
    fillTable(
      document.getElementById("daily-table"),
      DAILY_LABELS[metric] + " par jour et par variante",
      ["Jour"].concat(names.map(variantLabel)),
      days.map(function (d) {
        return [dayLabel(d)].concat(names.map(function (n) {
          return numberFr.format(value[n + "|" + d] || 0);
        }));
      }),
    );
  }

  // A horizontal rule at 0 on the y axis: the line an interval must not cross.
  const zeroLine = {
    id: "zeroLine",
    afterDatasetsDraw: function (chart) {
      const y = chart.scales.y.getPixelForValue(0);
      const area = chart.chartArea;
      if (y < area.top || y > area.bottom) return;
      const ctx = chart.ctx;
      ctx.save();
      ctx.strokeStyle = "#1f2933";
      ctx.lineWidth = 1.5;
      ctx.setLineDash([6, 4]);
      ctx.beginPath();
      ctx.moveTo(area.left, y);
      ctx.lineTo(area.right, y);
      ctx.stroke();
      ctx.restore();
    },
  };

  function drawDifferences(report) {
    const shown = report.differences.filter(function (d) { return d.difference !== null; });
    const labels = shown.map(function (d) {
      return [d.variant + " − " + d.baseline, METRIC_LABELS[d.metric] || d.metric];
    });
    const toPoints = function (v) { return v === null ? null : v * 100; };
    draw("diff-chart", {
      type: "bar",
      data: {
        labels: labels,
        datasets: [
          {
            type: "line",
            label: "Écart mesuré (points de %)",
            data: shown.map(function (d) { return toPoints(d.difference); }),
            showLine: false,
            pointStyle: "rectRot",
            pointRadius: 7,
            borderColor: "#1f2933",
            backgroundColor: "#1f2933",
          },
          {
            label: "Intervalle de confiance à 95 %",
            data: shown.map(function (d) {
              return d.ci_low === null || d.ci_high === null
                ? null : [toPoints(d.ci_low), toPoints(d.ci_high)];
            }),
            backgroundColor: shown.map(function (d) {
              return d.significant ? "rgba(15, 94, 87, 0.55)" : "rgba(97, 110, 124, 0.4)";
            }),
            borderColor: shown.map(function (d) { return d.significant ? "#0f5e57" : "#616e7c"; }),
            borderWidth: 1,
            barPercentage: 0.35,
          },
        ],
      },
      options: {
        scales: {
          y: { grace: "10%", title: { display: true, text: "Écart (points de pourcentage)" } },
        },
        plugins: { legend: { position: "bottom" } },
      },
      plugins: [zeroLine],
    });
    fillTable(
      document.getElementById("diff-table"),
      "Écarts à la référence avec leur intervalle de confiance à 95 %",
      ["Comparaison", "Mesure", "Écart", "Borne basse", "Borne haute", "p-valeur", "Significatif",
        "Méthode"],
      report.differences.map(function (d) {
        return [d.variant + " − " + d.baseline, METRIC_LABELS[d.metric] || d.metric,
          points(d.difference), points(d.ci_low), points(d.ci_high),
          d.p_value === null ? "—" : pValueFr.format(d.p_value),
          d.significant ? "oui" : "non", d.method];
      }),
    );
  }

  function drawCoverage(report) {
    const sizes = report.coverage.filter(function (c) { return c.scope === "taille"; });
    const xxl = report.coverage.filter(function (c) { return c.scope === "epci_xxl"; });
    const asPercent = function (v) { return v === null ? null : v * 100; };
    const percentAxis = {
      min: 0,
      max: 100,
      title: { display: true, text: "Communes atteintes (%)" },
    };
    draw("size-chart", {
      type: "bar",
      data: {
        labels: sizes.map(function (c) { return c.label; }),
        datasets: [{
          label: "Communes atteintes",
          data: sizes.map(function (c) { return asPercent(c.share); }),
          backgroundColor: PALETTE[0],
        }],
      },
      options: { indexAxis: "y", scales: { x: percentAxis }, plugins: { legend: { position: "bottom" } } },
    });
    draw("xxl-chart", {
      type: "bar",
      data: {
        labels: xxl.map(function (c) { return c.label; }),
        datasets: [
          {
            label: "Toutes ses communes",
            data: xxl.map(function (c) { return asPercent(c.share); }),
            backgroundColor: PALETTE[0],
          },
          {
            label: "Ses communes de moins de 2 000 habitants",
            data: xxl.map(function (c) {
              return c.small_communes ? (100 * c.small_reached) / c.small_communes : null;
            }),
            backgroundColor: PALETTE[1],
          },
        ],
      },
      options: { indexAxis: "y", scales: { x: percentAxis }, plugins: { legend: { position: "bottom" } } },
    });
    fillTable(
      document.getElementById("coverage-table"),
      "Couverture des communes par taille et par EPCI XXL",
      ["Territoire", "Communes", "Atteintes", "Part", "Petites communes", "Petites atteintes"],
      report.coverage.map(function (c) {
        return [c.label, numberFr.format(c.communes), numberFr.format(c.reached), rate(c.share),
          c.small_communes === null || c.small_communes === undefined ? "—" : numberFr.format(c.small_communes),
          c.small_reached === null || c.small_reached === undefined ? "—" : numberFr.format(c.small_reached)];
      }),
    );
  }

  function drawCohorts(report) {
    const weeks = Array.from(new Set(report.cohorts.map(function (c) { return c.cohort; }))).sort();
    const names = report.variants.map(function (v) { return v.variant; });
    const byKey = {};
    report.cohorts.forEach(function (c) { byKey[c.variant + "|" + c.cohort] = c; });
    const weekLabel = function (w) { return "Semaine du " + dayLabel(w); };
    const share = function (c, field) {
      return c && c[field].rate !== null ? c[field].rate * 100 : null;
    };
    draw("cohort-chart", {
      type: "bar",
      data: {
        labels: weeks.map(weekLabel),
        datasets: names.map(function (name, i) {
          return {
            label: variantLabel(name),
            data: weeks.map(function (w) { return share(byKey[name + "|" + w], "return_7d"); }),
            backgroundColor: PALETTE[i % PALETTE.length],
          };
        }),
      },
      options: {
        scales: { y: { min: 0, max: 100, title: { display: true, text: "Revenus à 7 jours (%)" } } },
        plugins: { legend: { position: "bottom" } },
      },
    });
    fillTable(
      document.getElementById("cohort-table"),
      "Retour des inscrits à 7 et 30 jours par cohorte et par variante",
      ["Cohorte", "Variante", "Inscrits", "Revenus à 7 jours", "Revenus à 30 jours"],
      report.cohorts.map(function (c) {
        return [weekLabel(c.cohort), variantLabel(c.variant), numberFr.format(c.users),
          rate(c.return_7d.rate), rate(c.return_30d.rate)];
      }),
    );
  }

  function showVerdict(report) {
    const since = instantFr.format(new Date(report.since));
    const until = instantFr.format(new Date(report.until));
    const who = report.experiment ? "Expérience « " + report.experiment.spec.name + " »" : "Tous les utilisateurs";
    document.getElementById("period").textContent = who + ", du " + since + " au " + until + ".";
    const srm = document.getElementById("srm");
    const ratio = report.sample_ratio;
    if (ratio && ratio.mismatch) {
      srm.textContent =
        "Alerte : la répartition des unités entre variantes ne correspond pas aux parts prévues" +
        " (χ² = " + numberFr.format(Math.round(ratio.chi2 * 100) / 100) + ", p = " +
        pValueFr.format(ratio.p_value) + "). L’affectation ou la journalisation est peut-être" +
        " défaillante : ne concluez rien de cette expérience.";
      srm.hidden = false;
    } else {
      srm.hidden = true;
      srm.textContent = "";
    }
    document.getElementById("verdict").textContent =
      (report.winner ? "Variante gagnante : " + report.winner + ". " : "") + report.verdict;
  }

  // ------------------------------------------------------------------ the choropleth

  function classOf(value) {
    for (const c of CLASSES) if (value < c[0]) return c;
    return CLASSES[CLASSES.length - 1];
  }

  function rateColor() {
    const steps = ["step", ["feature-state", "rate"], CLASSES[0][1]];
    for (let i = 1; i < CLASSES.length; i++) steps.push(CLASSES[i - 1][0], CLASSES[i][1]);
    return ["case", ["==", ["typeof", ["feature-state", "rate"]], "number"], steps, NO_DATA];
  }

  function mapStyle() {
    const attribution = "Contours : IGN Admin Express, codes : INSEE COG (Licence Ouverte)";
    const outline = { "line-color": "#616e7c", "line-width": 0.5 };
    return {
      version: 8,
      sources: {
        territories: {
          type: "vector",
          tiles: [ORIGIN + "/v1/tiles/communes/{z}/{x}/{y}.mvt"],
          maxzoom: 14,
          promoteId: "code",
          attribution: attribution,
        },
        epcis: {
          type: "vector",
          tiles: [ORIGIN + "/v1/tiles/epcis/{z}/{x}/{y}.mvt"],
          maxzoom: 12,
          promoteId: "code",
          attribution: attribution,
        },
      },
      layers: [
        { id: "background", type: "background", paint: { "background-color": "#dce8f0" } },
        {
          id: "epcis-fill", type: "fill", source: "epcis", "source-layer": "epcis",
          paint: { "fill-color": rateColor(), "fill-opacity": 0.9 },
        },
        { id: "epcis-line", type: "line", source: "epcis", "source-layer": "epcis", paint: outline },
        {
          id: "departements-line", type: "line", source: "territories",
          "source-layer": "departements", maxzoom: COMMUNE_MIN_ZOOM,
          paint: { "line-color": "#3e4c59", "line-width": 0.8 },
          layout: { visibility: "none" },
        },
        {
          id: "communes-fill", type: "fill", source: "territories", "source-layer": "communes",
          minzoom: COMMUNE_MIN_ZOOM, paint: { "fill-color": rateColor(), "fill-opacity": 0.9 },
          layout: { visibility: "none" },
        },
        {
          id: "communes-line", type: "line", source: "territories", "source-layer": "communes",
          minzoom: COMMUNE_MIN_ZOOM, paint: outline, layout: { visibility: "none" },
        },
      ],
    };
  }

  function showLegend() {
    const legend = document.getElementById("map-legend");
    legend.replaceChildren();
    CLASSES.concat([[null, NO_DATA, "aucun utilisateur"]]).forEach(function (c) {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.setAttribute("aria-hidden", "true");
      swatch.style.background = c[1];
      item.append(swatch, c[2]);
      legend.appendChild(item);
    });
  }

  let map = null;
  let mapReady = null;
  try {
    map = new maplibregl.Map({
      container: "map",
      style: mapStyle(),
      bounds: FRANCE,
      fitBoundsOptions: { padding: 8 },
      maxZoom: 14,
      attributionControl: { compact: true },
      locale: {
        "AttributionControl.ToggleAttribution": "Afficher ou masquer les sources",
        "NavigationControl.ZoomIn": "Zoomer",
        "NavigationControl.ZoomOut": "Dézoomer",
        "NavigationControl.ResetBearing": "Revenir au nord",
      },
    });
    map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
    mapReady = new Promise(function (resolve) { map.on("load", resolve); });
    window.growthMap = map;
  } catch (error) {
    mapError.textContent =
      "La carte ne peut pas s’afficher dans ce navigateur (WebGL indisponible) ; " +
      "le tableau des territoires reste lisible par les lecteurs d’écran.";
    mapError.hidden = false;
  }
  showLegend();

  const LEVELS = {
    epci: { source: "epcis", sourceLayer: "epcis", show: ["epcis-fill", "epcis-line"] },
    commune: {
      source: "territories",
      sourceLayer: "communes",
      show: ["communes-fill", "communes-line", "departements-line"],
    },
  };
  const ALL_LAYERS = ["epcis-fill", "epcis-line", "communes-fill", "communes-line", "departements-line"];

  function currentLevel() {
    return document.querySelector('input[name="level"]:checked').value;
  }

  let areasAsked = 0;
  // The areas are everyone's over the report's period (the API has no per-experiment areas).
  async function loadAreas() {
    const level = currentLevel();
    const asked = ++areasAsked;
    const params = new URLSearchParams({ level: level });
    if (report) {
      params.set("since", report.since);
      params.set("until", report.until);
    }
    const rows = await getJson("/v1/growth/areas?" + params.toString());
    if (asked !== areasAsked) return;
    const label = level === "epci" ? "EPCI (SIREN)" : "Commune (code INSEE)";
    fillTable(
      document.getElementById("map-table"),
      "Taux de participation par " + (level === "epci" ? "EPCI" : "commune"),
      [label, "Utilisateurs", "Engagés", "Participants", "Taux de participation"],
      rows.map(function (a) {
        return [a.code, numberFr.format(a.users), numberFr.format(a.engaged),
          numberFr.format(a.participated), rate(a.rate)];
      }),
    );
    if (!map) return;
    await mapReady;
    if (asked !== areasAsked) return;
    const spec = LEVELS[level];
    ALL_LAYERS.forEach(function (id) {
      map.setLayoutProperty(id, "visibility", spec.show.includes(id) ? "visible" : "none");
    });
    Object.values(LEVELS).forEach(function (l) {
      map.removeFeatureState({ source: l.source, sourceLayer: l.sourceLayer });
    });
    rows.forEach(function (a) {
      if (a.rate === null || a.rate === undefined) return;
      map.setFeatureState(
        { source: spec.source, sourceLayer: spec.sourceLayer, id: a.code },
        { rate: a.rate },
      );
    });
    map.getContainer().dataset.level = level;
    map.getContainer().dataset.areas = String(rows.length);
  }

  // ------------------------------------------------------------------ data

  async function getJson(path) {
    const answer = await fetch(ORIGIN + path, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    if (answer.status === 401) {
      window.location.assign("/staff/session");
      throw new Error("session expirée");
    }
    if (!answer.ok) {
      let detail = "HTTP " + answer.status;
      try { detail = (await answer.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(detail);
    }
    return answer.json();
  }

  function offer(name, text) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = text;
    experimentSelect.appendChild(option);
  }

  // The experiments (GET /v1/growth/experiments, newest first), and the one named in the
  // address (?experiment=name) even when the listing cannot be read: the report then says
  // whether it exists.
  async function loadExperiments() {
    let experiments = [];
    try {
      experiments = await getJson("/v1/growth/experiments");
    } catch (error) {
      // Without the listing the page still shows everyone ("tous").
    }
    experiments.forEach(function (e) {
      offer(e.spec.name, e.spec.name + " (" + e.spec.surface + ", " + e.status + ")");
    });
    const wanted = new URLSearchParams(window.location.search).get("experiment");
    if (wanted) {
      if (!experiments.some(function (e) { return e.spec.name === wanted; })) offer(wanted, wanted);
      experimentSelect.value = wanted;
    }
  }

  let report = null;
  let reportAsked = 0;
  async function loadReport() {
    const experiment = experimentSelect.value;
    const asked = ++reportAsked;
    statusLine.textContent = "Chargement des chiffres…";
    document.body.dataset.ready = "false";
    const params = new URLSearchParams();
    if (experiment) params.set("experiment", experiment);
    try {
      const got = await getJson("/v1/growth/report" + (params.toString() ? "?" + params : ""));
      if (asked !== reportAsked) return;
      report = got;
      showVerdict(report);
      drawFunnel(report);
      drawDaily(report);
      drawDifferences(report);
      drawCohorts(report);
      drawCoverage(report);
      await loadAreas();
      if (asked !== reportAsked) return;
      statusLine.textContent =
        "Chiffres à jour (" + instantFr.format(new Date(report.generated_at)) + ").";
      document.body.dataset.ready = "true";
    } catch (error) {
      if (asked !== reportAsked) return;
      statusLine.textContent = "Les chiffres n’ont pas pu être chargés : " + error.message;
      document.body.dataset.ready = "error";
    }
  }

  experimentSelect.addEventListener("change", loadReport);
  dailySelect.addEventListener("change", function () { if (report) drawDaily(report); });
  document.querySelectorAll('input[name="level"]').forEach(function (input) {
    input.addEventListener("change", function () {
      loadAreas().catch(function (error) {
        statusLine.textContent = "Les taux par territoire n’ont pas pu être chargés : " + error.message;
      });
    });
  });
  document.getElementById("controls").addEventListener("submit", function (e) { e.preventDefault(); });

  loadExperiments().then(loadReport);
})();
