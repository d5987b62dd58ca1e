// The participatory map (GET /map): the engine's own vector tiles drawn with MapLibre GL JS, and
// the "Près de chez moi" search (a commune by name or postal code, GET /v1/territories/places, or
// coordinates; then GET /v1/projects/nearby), usable with the keyboard alone: the results are
// buttons, arrow keys move between them, Enter or Space opens a project's popup and moves the
// focus there, Escape closes it and gives the focus back. Every request goes to this origin:
// no outside base map, no glyphs, no sprites, so no text layers (those need glyphs).
(function () {
  "use strict";

  const ORIGIN = window.location.origin;
  const TOOL_LABELS = JSON.parse(document.getElementById("tool-labels").textContent);
  const STATUS_LABELS = {
    upcoming: "À venir",
    open: "Ouvert",
    closed: "Clos",
    results: "Résultats publiés",
  };
  const STATUS_COLORS = {
    upcoming: "#7c3aed",
    open: "#0f766e",
    closed: "#6b7280",
    results: "#6b7280",
  };
  // MapLibre's own words (buttons, titles) in French.
  const MAPLIBRE_FR = {
    "AttributionControl.ToggleAttribution": "Afficher ou masquer les sources",
    "AttributionControl.MapFeedback": "Signaler une erreur sur la carte",
    "FullscreenControl.Enter": "Plein écran",
    "FullscreenControl.Exit": "Quitter le plein écran",
    "GeolocateControl.FindMyLocation": "Me localiser",
    "GeolocateControl.LocationNotAvailable": "Position indisponible",
    "LogoControl.Title": "Logo MapLibre",
    "Map.Title": "Carte",
    "Marker.Title": "Repère",
    "NavigationControl.ResetBearing": "Faire glisser pour tourner la carte, cliquer pour revenir au nord",
    "NavigationControl.ZoomIn": "Zoomer",
    "NavigationControl.ZoomOut": "Dézoomer",
    "Popup.Close": "Fermer",
    "ScaleControl.Meters": "m",
    "ScaleControl.Kilometers": "km",
  };
  // A signed-in member's token (kept by the platform's sign-in in sessionStorage): their
  // private projects come from a layer of their own, never cached (GET
  // /v1/tiles/projects-private), drawn over the public tiles every visitor shares.
  const TOKEN = (function () {
    try {
      return window.sessionStorage.getItem("geo_engine_token");
    } catch (error) {
      return null;
    }
  })();
  const PRIVATE_TILES = ORIGIN + "/v1/tiles/projects-private/";
  // The project layers of a source: drawn alike from the public and the private tiles.
  const PROJECT_LAYERS = ["project-clusters", "contributions", "projects"];
  const PRIVATE_PREFIX = "private-";

  // The layers a click or the pointer reaches: the private copies only when they exist.
  const CLICKABLE = ["meetings"].concat(
    PROJECT_LAYERS,
    TOKEN ? PROJECT_LAYERS.map(function (id) { return PRIVATE_PREFIX + id; }) : [],
  );

  // A private copy's id as the layer it copies, so that clicks on both read alike.
  function projectLayerOf(id) {
    return id.startsWith(PRIVATE_PREFIX) ? id.slice(PRIVATE_PREFIX.length) : id;
  }

  // Mainland France and Corsica.
  const FRANCE = [[-5.3, 41.3], [9.7, 51.15]];
  const SEARCH_LIMIT = 10;

  const form = document.getElementById("nearby-form");
  const placeInput = document.getElementById("place");
  const radiusSelect = document.getElementById("radius");
  const statusLine = document.getElementById("nearby-status");
  const list = document.getElementById("nearby-list");
  const resultsHint = document.getElementById("results-hint");
  const mapError = document.getElementById("map-error");

  // ------------------------------------------------------------------ text helpers

  function escapeHtml(value) {
    return String(value === undefined || value === null ? "" : value)
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&#39;");
  }

  function toolLabel(tool) {
    return TOOL_LABELS[tool] || tool || "Outil inconnu";
  }

  const numberFr = new Intl.NumberFormat("fr-FR", { maximumFractionDigits: 1 });
  const dateFr = new Intl.DateTimeFormat("fr-FR", {
    timeZone: "Europe/Paris",
    day: "2-digit",
    month: "2-digit",
    year: "numeric",
  });

  function formatDistance(metres) {
    const m = Number(metres);
    if (!Number.isFinite(m)) return "";
    if (m < 1000) return Math.round(m) + " m";
    return numberFr.format(m / 1000) + " km";
  }

  // Tiles give "YYYY-MM-DD" (already the Paris date); the API gives full timestamps.
  function formatDate(value) {
    if (!value) return null;
    const day = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
    if (day) return day[3] + "/" + day[2] + "/" + day[1];
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? null : dateFr.format(date);
  }

  function formatDates(opensAt, closesAt) {
    const from = formatDate(opensAt);
    const to = formatDate(closesAt);
    if (from && to) return "Du " + from + " au " + to;
    if (from) return "À partir du " + from;
    if (to) return "Jusqu’au " + to;
    return "Dates à venir";
  }

  function projectHtml(p) {
    const status = STATUS_LABELS[p.status];
    return (
      '<div class="popup">' +
      '<h3 class="popup-title" id="popup-title">' + escapeHtml(p.title) + "</h3>" +
      '<dl class="popup-facts">' +
      "<dt>Outil</dt><dd class=\"popup-tool\">" + escapeHtml(toolLabel(p.tool)) + "</dd>" +
      "<dt>Organisation</dt><dd class=\"popup-organisation\">" +
      escapeHtml(p.organisation) + "</dd>" +
      "<dt>Dates</dt><dd class=\"popup-dates\">" +
      escapeHtml(formatDates(p.opens_at, p.closes_at)) + "</dd>" +
      (status ? "<dt>Statut</dt><dd>" + escapeHtml(status) + "</dd>" : "") +
      "</dl></div>"
    );
  }

  // Meetings (GET /v1/meetings): times are UTC instants, shown in Paris time with the weekday.
  const meetingDateFr = new Intl.DateTimeFormat("fr-FR", {
    timeZone: "Europe/Paris",
    weekday: "long",
    day: "numeric",
    month: "long",
    year: "numeric",
  });
  const meetingTimeFr = new Intl.DateTimeFormat("fr-FR", {
    timeZone: "Europe/Paris",
    hour: "2-digit",
    minute: "2-digit",
  });

  function meetingWhen(startsAt, endsAt) {
    const start = new Date(startsAt);
    const end = new Date(endsAt);
    if (Number.isNaN(start.getTime())) return "";
    const text = meetingDateFr.format(start) + ", " + meetingTimeFr.format(start);
    return Number.isNaN(end.getTime()) ? text : text + " – " + meetingTimeFr.format(end);
  }

  function meetingHtml(m) {
    return (
      '<div class="popup popup-meeting">' +
      '<h3 class="popup-title" id="popup-title">' + escapeHtml(m.title) + "</h3>" +
      '<dl class="popup-facts">' +
      "<dt>Type</dt><dd>" + escapeHtml(m.kind_label) + "</dd>" +
      '<dt>Date</dt><dd class="popup-when">' + escapeHtml(meetingWhen(m.starts_at, m.ends_at)) +
      "</dd>" +
      '<dt>Lieu</dt><dd class="popup-place">' + escapeHtml(m.place) + "</dd>" +
      "<dt>Projet</dt><dd>" + escapeHtml(m.project_title) + "</dd>" +
      "</dl>" +
      '<p><a class="popup-ics" href="' + escapeHtml(ORIGIN + "/v1/meetings/" +
        encodeURIComponent(String(m.id)) + ".ics") +
      '" download>Ajouter à mon agenda (.ics)</a></p>' +
      "</div>"
    );
  }

  function contributionHtml(c) {
    return (
      '<div class="popup">' +
      '<h3 class="popup-title" id="popup-title">' + escapeHtml(c.title || "Contribution") +
      "</h3>" +
      '<dl class="popup-facts"><dt>Catégorie</dt><dd>' + escapeHtml(c.category) + "</dd></dl>" +
      "</div>"
    );
  }

  // ------------------------------------------------------------------ the map

  // With a token, the private source and a copy of each project layer reading it.
  function withPrivateProjects(style) {
    if (!TOKEN) return style;
    style.sources["projects-private"] = {
      type: "vector",
      tiles: [PRIVATE_TILES + "{z}/{x}/{y}.mvt"],
      minzoom: 0,
      maxzoom: 16,
    };
    const copies = style.layers
      .filter(function (layer) { return PROJECT_LAYERS.indexOf(layer.id) >= 0; })
      .map(function (layer) {
        return Object.assign({}, layer, {
          id: PRIVATE_PREFIX + layer.id,
          source: "projects-private",
        });
      });
    const meetings = style.layers.findIndex(function (layer) { return layer.id === "meetings"; });
    style.layers.splice(meetings, 0, ...copies);
    return style;
  }

  function mapStyle() {
    const attribution =
      "Contours : IGN Admin Express, codes : INSEE COG (Licence Ouverte)";
    return {
      version: 8,
      sources: {
        territories: {
          type: "vector",
          tiles: [ORIGIN + "/v1/tiles/communes/{z}/{x}/{y}.mvt"],
          minzoom: 0,
          maxzoom: 14,
          attribution: attribution,
        },
        projects: {
          type: "vector",
          tiles: [ORIGIN + "/v1/tiles/projects/{z}/{x}/{y}.mvt"],
          minzoom: 0,
          // Below 16 the engine groups projects sharing a 1/64-tile cell into a cluster.
          maxzoom: 16,
        },
        // Upcoming public meetings in view, fetched when the map moves (GET /v1/meetings).
        meetings: { type: "geojson", data: { type: "FeatureCollection", features: [] } },
        // The point of the last "Près de chez moi" search, drawn under the projects.
        "search-point": { type: "geojson", data: { type: "FeatureCollection", features: [] } },
      },
      layers: [
        { id: "background", type: "background", paint: { "background-color": "#dce8f0" } },
        {
          id: "departements-fill",
          type: "fill",
          source: "territories",
          "source-layer": "departements",
          maxzoom: 9,
          paint: { "fill-color": "#f6f3ea" },
        },
        {
          id: "departements-line",
          type: "line",
          source: "territories",
          "source-layer": "departements",
          maxzoom: 9,
          paint: {
            "line-color": "#8c7f68",
            "line-width": ["interpolate", ["linear"], ["zoom"], 4, 0.6, 7, 1.4],
          },
        },
        {
          id: "communes-fill",
          type: "fill",
          source: "territories",
          "source-layer": "communes",
          minzoom: 9,
          paint: { "fill-color": "#f6f3ea" },
        },
        {
          id: "communes-line",
          type: "line",
          source: "territories",
          "source-layer": "communes",
          minzoom: 9,
          paint: {
            "line-color": "#a3957c",
            "line-width": ["interpolate", ["linear"], ["zoom"], 9, 0.4, 12, 1.2, 16, 2],
          },
        },
        {
          id: "search-point",
          type: "circle",
          source: "search-point",
          paint: {
            "circle-color": "#ffffff",
            "circle-radius": 9,
            "circle-stroke-color": "#c2410c",
            "circle-stroke-width": 4,
          },
        },
        {
          id: "project-clusters",
          type: "circle",
          source: "projects",
          "source-layer": "project_clusters",
          paint: {
            "circle-color": "#0f766e",
            "circle-opacity": 0.75,
            "circle-radius": [
              "interpolate", ["linear"], ["sqrt", ["get", "count"]],
              1, 5,
              10, 16,
              40, 30,
            ],
            "circle-stroke-color": "#ffffff",
            "circle-stroke-width": 1.5,
          },
        },
        {
          id: "contributions",
          type: "circle",
          source: "projects",
          "source-layer": "contributions",
          minzoom: 14,
          paint: {
            "circle-color": "#d97706",
            "circle-radius": 4,
            "circle-stroke-color": "#ffffff",
            "circle-stroke-width": 1,
          },
        },
        {
          id: "projects",
          type: "circle",
          source: "projects",
          "source-layer": "projects",
          paint: {
            "circle-color": [
              "match", ["get", "status"],
              "upcoming", STATUS_COLORS.upcoming,
              "open", STATUS_COLORS.open,
              STATUS_COLORS.closed,
            ],
            "circle-radius": ["interpolate", ["linear"], ["zoom"], 5, 4, 9, 6, 14, 9],
            "circle-stroke-color": "#ffffff",
            "circle-stroke-width": 2,
          },
        },
        {
          id: "meetings",
          type: "circle",
          source: "meetings",
          paint: {
            "circle-color": "#be185d",
            "circle-radius": ["interpolate", ["linear"], ["zoom"], 10, 5, 14, 8],
            "circle-stroke-color": "#ffffff",
            "circle-stroke-width": 2,
          },
        },
      ],
    };
  }

  let map = null;
  try {
    map = new maplibregl.Map({
      container: "map",
      style: withPrivateProjects(mapStyle()),
      // Only the private tiles carry the token: the public ones stay shareable by any cache.
      transformRequest: function (url) {
        if (TOKEN && url.startsWith(PRIVATE_TILES)) {
          return { url: url, headers: { Authorization: "Bearer " + TOKEN } };
        }
        return { url: url };
      },
      bounds: FRANCE,
      fitBoundsOptions: { padding: 16 },
      maxZoom: 18,
      attributionControl: { compact: true },
      locale: MAPLIBRE_FR,
    });
  } catch (error) {
    mapError.textContent =
      "La carte ne peut pas s’afficher dans ce navigateur (WebGL indisponible). " +
      "La recherche « Près de chez moi » reste utilisable.";
    mapError.hidden = false;
  }

  let popup = null;

  // Opened from the keyboard (``returnTo``, the list's button): the popup is a dialog that takes
  // the focus, and gives it back to ``returnTo`` when it closes (Escape, its "Fermer" button).
  function openPopup(lngLat, html, returnTo) {
    if (!map) return;
    if (popup) popup.remove();
    const opened = new maplibregl.Popup({ maxWidth: "300px", focusAfterOpen: false })
      .setLngLat(lngLat)
      .setHTML(html)
      .addTo(map);
    popup = opened;
    const element = opened.getElement();
    element.setAttribute("role", "dialog");
    element.setAttribute("aria-labelledby", "popup-title");
    opened.on("close", function () {
      if (popup === opened) popup = null;
      const focusWasInside = !document.activeElement || document.activeElement === document.body ||
        element.contains(document.activeElement);
      if (returnTo && returnTo.isConnected && focusWasInside) returnTo.focus();
    });
    if (returnTo) {
      const content = element.querySelector(".popup");
      content.setAttribute("tabindex", "-1");
      content.focus();
    }
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && popup) {
      event.preventDefault();
      popup.remove();
    }
  });

  function showSearchPoint(lon, lat) {
    const data = {
      type: "FeatureCollection",
      features: [{ type: "Feature", properties: {}, geometry: { type: "Point", coordinates: [lon, lat] } }],
    };
    const source = map.getSource("search-point");
    if (source) source.setData(data);
    else map.once("load", function () { map.getSource("search-point").setData(data); });
  }

  function featuresNear(point, layers) {
    const box = [[point.x - 6, point.y - 6], [point.x + 6, point.y + 6]];
    const present = layers.filter(function (id) { return map.getLayer(id); });
    return map.queryRenderedFeatures(box, { layers: present });
  }

  if (map) {
    window.geoEngineMap = map;
    map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
    map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");

    map.on("click", function (event) {
      const hits = featuresNear(event.point, CLICKABLE).map(function (f) {
        return {
          layer: { id: projectLayerOf(f.layer.id) },
          geometry: f.geometry,
          properties: f.properties,
        };
      });
      const meeting = hits.find(function (f) { return f.layer.id === "meetings"; });
      if (meeting) {
        openPopup(meeting.geometry.coordinates, meetingHtml(meeting.properties));
        return;
      }
      const project = hits.find(function (f) { return f.layer.id === "projects"; });
      if (project) {
        openPopup(project.geometry.coordinates, projectHtml(project.properties));
        return;
      }
      const contribution = hits.find(function (f) { return f.layer.id === "contributions"; });
      if (contribution) {
        openPopup(contribution.geometry.coordinates, contributionHtml(contribution.properties));
        return;
      }
      const cluster = hits.find(function (f) { return f.layer.id === "project-clusters"; });
      if (cluster) {
        map.easeTo({ center: cluster.geometry.coordinates, zoom: Math.min(map.getZoom() + 2, 16) });
        return;
      }
      placeInput.value = event.lngLat.lat.toFixed(5).replace(".", ",") + " " +
        event.lngLat.lng.toFixed(5).replace(".", ",");
      searchNearby(event.lngLat.lat, event.lngLat.lng, false, null);
    });

    // The API answers boxes of at most 4 square degrees: wider views show no meetings.
    const MEETINGS_MAX_DEG2 = 4;
    let meetingsAsked = 0;
    async function loadMeetings() {
      const source = map.getSource("meetings");
      if (!source) return;
      const b = map.getBounds();
      const west = Math.max(b.getWest(), -180);
      const east = Math.min(b.getEast(), 180);
      const south = Math.max(b.getSouth(), -90);
      const north = Math.min(b.getNorth(), 90);
      const asked = ++meetingsAsked;
      if ((east - west) * (north - south) > MEETINGS_MAX_DEG2) {
        source.setData({ type: "FeatureCollection", features: [] });
        return;
      }
      const url = new URL("/v1/meetings", ORIGIN);
      url.search = new URLSearchParams({
        bbox: [west, south, east, north].map(function (v) { return v.toFixed(5); }).join(","),
        limit: "500",
      }).toString();
      try {
        const answer = await fetch(url, { headers: { Accept: "application/json" } });
        if (!answer.ok || asked !== meetingsAsked) return;
        source.setData(await answer.json());
      } catch (error) {
        // The meetings layer is an extra: the map stays usable without it.
      }
    }
    map.on("load", loadMeetings);
    map.on("moveend", loadMeetings);

    CLICKABLE.forEach(function (layer) {
      map.on("mouseenter", layer, function () { map.getCanvas().style.cursor = "pointer"; });
      map.on("mouseleave", layer, function () { map.getCanvas().style.cursor = ""; });
    });
  }

  // ------------------------------------------------------------------ "Près de chez moi"

  // "48,8566 2,3522", "48.8566, 2.3522" or "48,8566;2,3522": latitude then longitude, or null
  // for text that is no pair of numbers (then it names a commune). \d is ASCII digits only.
  const COORDINATES = /^\s*([-+]?\d+(?:[.,]\d+)?)\s*[,;\s]\s*([-+]?\d+(?:[.,]\d+)?)\s*$/;

  function parseCoordinates(text) {
    const found = COORDINATES.exec(text);
    if (!found) return null;
    return [Number(found[1].replace(",", ".")), Number(found[2].replace(",", "."))];
  }

  function setStatus(text, isError) {
    statusLine.textContent = text;
    statusLine.classList.toggle("status-error", Boolean(isError));
  }

  function renderResults(features, radius, placeName) {
    list.replaceChildren();
    const within = formatDistance(radius) + (placeName ? " de " + placeName : "");
    resultsHint.hidden = features.length === 0;
    if (features.length === 0) {
      setStatus("Aucun projet à moins de " + within + ".", false);
      return;
    }
    setStatus(
      (features.length === 1 ? "1 projet" : features.length + " projets") +
        " à moins de " + within + ", du plus proche au plus lointain.",
      false,
    );
    features.forEach(function (feature) {
      const p = feature.properties;
      const item = document.createElement("li");
      item.innerHTML =
        '<button type="button" class="result">' +
        '<span class="result-title">' + escapeHtml(p.title) + "</span>" +
        '<span class="result-meta">' + escapeHtml(toolLabel(p.tool)) + " · " +
        escapeHtml(p.organisation) + "</span>" +
        '<span class="result-distance">' + escapeHtml(formatDistance(p.distance_m)) + "</span>" +
        "</button>";
      item.dataset.projectId = String(p.id);
      const button = item.querySelector("button");
      button.addEventListener("click", function () {
        if (!map || !feature.geometry) return;
        list.querySelectorAll(".result").forEach(function (other) {
          other.removeAttribute("aria-current");
        });
        button.setAttribute("aria-current", "true");
        const coordinates = feature.geometry.coordinates;
        map.flyTo({ center: coordinates, zoom: Math.max(map.getZoom(), 14) });
        openPopup(coordinates, projectHtml(p), button);
      });
      list.appendChild(item);
    });
  }

  // Arrow keys, Home and End move between the results (Tab does too: each is a button).
  list.addEventListener("keydown", function (event) {
    const buttons = Array.from(list.querySelectorAll(".result"));
    const at = buttons.indexOf(document.activeElement);
    if (at < 0) return;
    const next = {
      ArrowDown: Math.min(at + 1, buttons.length - 1),
      ArrowUp: Math.max(at - 1, 0),
      Home: 0,
      End: buttons.length - 1,
    }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    buttons[next].focus();
  });

  async function searchNearby(lat, lon, moveMap, placeName) {
    const radius = Number(radiusSelect.value);
    if (map) {
      showSearchPoint(lon, lat);
      // A typed point: go there, unless it is already in view close enough.
      const inView = map.getBounds().contains([lon, lat]) && map.getZoom() >= 12;
      if (moveMap && !inView) map.flyTo({ center: [lon, lat], zoom: 12 });
    }
    setStatus("Recherche en cours…", false);
    const url = new URL("/v1/projects/nearby", ORIGIN);
    url.search = new URLSearchParams({
      lat: String(lat),
      lon: String(lon),
      radius_m: String(radius),
      limit: String(SEARCH_LIMIT),
    }).toString();
    let answer;
    try {
      answer = await fetch(url, { headers: { Accept: "application/geo+json" } });
    } catch (error) {
      setStatus("Le serveur ne répond pas : réessayez dans un instant.", true);
      return;
    }
    if (!answer.ok) {
      setStatus("La recherche a été refusée par le serveur (erreur " + answer.status + ").", true);
      return;
    }
    const collection = await answer.json();
    renderResults(collection.features || [], radius, placeName);
  }

  // A commune by name or postal code: the best match (GET /v1/territories/places).
  async function searchPlace(text) {
    setStatus("Recherche de « " + text + " »…", false);
    const url = new URL("/v1/territories/places", ORIGIN);
    url.search = new URLSearchParams({ q: text, limit: "1" }).toString();
    let answer;
    try {
      answer = await fetch(url, { headers: { Accept: "application/json" } });
    } catch (error) {
      setStatus("Le serveur ne répond pas : réessayez dans un instant.", true);
      return;
    }
    if (answer.status === 422) {
      setStatus("Saisissez le nom d’une commune, un code postal ou des coordonnées.", true);
      return;
    }
    if (!answer.ok) {
      setStatus("La recherche a été refusée par le serveur (erreur " + answer.status + ").", true);
      return;
    }
    const place = ((await answer.json()).places || [])[0];
    if (!place) {
      list.replaceChildren();
      resultsHint.hidden = true;
      setStatus(
        "Aucune commune ne correspond à « " + text + " » : vérifiez l’orthographe, " +
          "ou saisissez un code postal.",
        true,
      );
      return;
    }
    searchNearby(place.lat, place.lon, true, place.name + " (" + place.departement + ")");
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const text = placeInput.value.trim();
    if (!text) {
      setStatus("Saisissez une commune, un code postal ou des coordonnées.", true);
      placeInput.focus();
      return;
    }
    const coordinates = parseCoordinates(text);
    if (!coordinates) {
      searchPlace(text);
      return;
    }
    const [lat, lon] = coordinates;
    if (lat < -90 || lat > 90 || lon < -180 || lon > 180) {
      setStatus(
        "Coordonnées invalides : la latitude va de -90 à 90, la longitude de -180 à 180 " +
          "(par exemple 48,8566 2,3522).",
        true,
      );
      placeInput.focus();
      return;
    }
    searchNearby(lat, lon, true, null);
  });
})();
