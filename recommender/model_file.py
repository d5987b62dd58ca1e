"""The learned ranker on disk, saved with what it was made of and loaded only when it is safe.

``save(model, path)`` writes two files: ``path`` (conventionally ``….skops``), the fitted
scikit-learn pipeline in skops' format, which describes objects instead of pickling code; and
``path`` + ``.json`` beside it, the metadata:

- ``format`` (:data:`FORMAT`) and ``format_version``;
- ``features``: the feature names, in the order the model reads them;
- ``window``: the training window, ``{"start", "end"}`` ISO datetimes or ``{"label"}``;
- ``seed``, ``class_weight``, ``params``, ``metrics`` (held-out ROC AUC, log loss, rows);
- ``versions``: of python, scikit-learn, numpy, scipy and skops that wrote it;
- ``created_at``, ``version`` (the name recommendations carry);
- ``sha256``: of the ``.skops`` bytes.

``load(path)`` refuses, with :class:`contracts.errors.InvalidInput` naming what is wrong: a
missing file or metadata; metadata that is not what ``save`` writes; bytes whose sha256 differs
from the metadata's (the file was changed); features other than the running code's
:data:`features.FEATURES` (naming the missing and the unknown ones, or a different order); a
scikit-learn of another major.minor version than the running one (its estimators' internals
may differ); any type skops does not trust by default that is not in :data:`TRUSTED_TYPES`
(never ``trusted=True``: a function or a custom class in the file is refused, not run); and
anything but the scaler + logistic regression pipeline over the features.

The bytes are read once: the sha256, the type check and the load all see the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import tempfile
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import sklearn
import skops
import skops.io
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from contracts.errors import InvalidInput
from recommender.features import FEATURES
from recommender.learned import LearnedModel, Window, check_window

FORMAT = "geo-engine/learned-ranker"
FORMAT_VERSION = 1

#: Types beyond skops' defaults a model file may hold. skops trusts scikit-learn's estimators,
#: numpy arrays and builtins by itself, which is all the scaler + logistic regression pipeline
#: needs (checked with scikit-learn 1.9 / skops 0.16); anything else in a file is refused. Add a
#: type here only after reading what loading it can do.
TRUSTED_TYPES: frozenset[str] = frozenset()

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def metadata_path(path: Path) -> Path:
    """Where the metadata of the model file ``path`` lives: ``path`` + ``.json``."""
    return path.with_name(path.name + ".json")


def library_versions() -> dict[str, str]:
    """Versions of what writes and reads the model, as saved in the metadata."""
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "skops": skops.__version__,
    }


def _window_json(window: Window) -> dict[str, str]:
    if isinstance(window, str):
        return {"label": window}
    return {"start": window[0].isoformat(), "end": window[1].isoformat()}


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(model: LearnedModel, path: Path) -> Path:
    """Write the model to ``path`` and its metadata to :func:`metadata_path` (each file
    replaced atomically); return the metadata's path. InvalidInput when it cannot be written
    (no such folder, no permission)."""
    path = Path(path)
    data = skops.io.dumps(model.pipeline)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": model.version,
        "features": list(model.features),
        "window": _window_json(model.window),
        "seed": model.seed,
        "class_weight": model.class_weight,
        "params": dict(model.params),
        "metrics": dict(model.metrics),
        "versions": library_versions(),
        "created_at": model.created_at.isoformat(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    meta = metadata_path(path)
    text = json.dumps(metadata, indent=2, ensure_ascii=False) + "\n"
    try:
        _write_atomically(path, data)
        _write_atomically(meta, text.encode())
    except OSError as error:
        raise InvalidInput(
            f"cannot write learned model {path}: {error.strerror or error}"
        ) from None
    return meta


def load(path: Path) -> LearnedModel:
    """The model saved at ``path``, after every check of the module's list (InvalidInput)."""
    path = Path(path)
    where = f"learned model {path}"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"{where} does not exist") from None
    except OSError as error:
        raise InvalidInput(f"{where} cannot be read: {error.strerror or error}") from None
    metadata = _read_metadata(path, where)

    actual = hashlib.sha256(data).hexdigest()
    if actual != metadata["sha256"]:
        raise InvalidInput(
            f"{where}: its sha256 is {actual} but its metadata says {metadata['sha256']}; "
            "the file was changed after it was saved, retrain or restore it"
        )
    _check_features(metadata["features"], where)
    _check_versions(metadata["versions"], where)

    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as error:  # skops raises zip, JSON or key errors on a malformed file
        raise InvalidInput(f"{where} is not a readable skops file: {error}") from None
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        raise InvalidInput(
            f"{where} holds types outside the allow-list, refused unloaded: {', '.join(refused)}"
        )
    try:
        pipeline = skops.io.loads(data, trusted=sorted(untrusted))
    except Exception as error:  # same: whatever a malformed file makes skops raise
        raise InvalidInput(f"{where} cannot be loaded: {error}") from None
    _check_pipeline(pipeline, where)

    return LearnedModel(
        pipeline=pipeline,
        features=tuple(metadata["features"]),
        window=metadata["window"],
        seed=metadata["seed"],
        metrics=metadata["metrics"],
        created_at=metadata["created_at"],
        version=metadata["version"],
        class_weight=metadata["class_weight"],
        params=metadata["params"],
    )


def _read_metadata(path: Path, where: str) -> dict[str, Any]:
    meta = metadata_path(path)
    try:
        text = meta.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{where}: its metadata file {meta} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"{where}: its metadata file {meta} cannot be read: {error}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"{where}: its metadata file {meta} is not JSON: {error}") from None

    def bad(what: str) -> InvalidInput:
        return InvalidInput(f"{where}: bad metadata in {meta}: {what}")

    if not isinstance(document, dict):
        raise bad("not a JSON object")
    if document.get("format") != FORMAT or document.get("format_version") != FORMAT_VERSION:
        raise bad(f"format must be {FORMAT!r} version {FORMAT_VERSION}")
    out: dict[str, Any] = {}
    version = document.get("version")
    if not isinstance(version, str) or not version:
        raise bad("'version' must be a non-empty string")
    out["version"] = version
    features = document.get("features")
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise bad("'features' must be a list of feature names")
    out["features"] = features
    sha = document.get("sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise bad("'sha256' must be 64 lowercase hexadecimal digits")
    out["sha256"] = sha
    seed = document.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise bad("'seed' must be an integer")
    out["seed"] = seed
    class_weight = document.get("class_weight")
    if class_weight not in (None, "balanced"):
        raise bad("'class_weight' must be null or \"balanced\"")
    out["class_weight"] = class_weight
    out["window"] = _read_window(document.get("window"), bad)
    out["metrics"] = _numbers(document.get("metrics"), "metrics", bad)
    params = document.get("params")
    if not isinstance(params, dict):
        raise bad("'params' must be an object")
    out["params"] = params
    versions = document.get("versions")
    if not isinstance(versions, dict) or not isinstance(versions.get("scikit-learn"), str):
        raise bad("'versions' must name the scikit-learn version that wrote the model")
    out["versions"] = versions
    try:
        created_at = datetime.fromisoformat(str(document.get("created_at")))
    except ValueError:
        raise bad("'created_at' must be an ISO 8601 datetime") from None
    if created_at.tzinfo is None:
        raise bad("'created_at' must carry a time zone")
    out["created_at"] = created_at
    return out


def _read_window(window: object, bad: Callable[[str], InvalidInput]) -> Window:
    if isinstance(window, dict) and set(window) == {"label"} and isinstance(window["label"], str):
        label: str = window["label"]
        return label
    if isinstance(window, dict) and set(window) == {"start", "end"}:
        try:
            start = datetime.fromisoformat(str(window["start"]))
            end = datetime.fromisoformat(str(window["end"]))
            checked = check_window((start, end))
        except (ValueError, InvalidInput) as error:
            raise bad(f"'window': {error}") from None
        return checked
    raise bad('\'window\' must be {"start", "end"} ISO datetimes or {"label"}')


def _numbers(value: object, name: str, bad: Callable[[str], InvalidInput]) -> dict[str, float]:
    if not isinstance(value, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
    ):
        raise bad(f"'{name}' must be an object of numbers")
    return {str(k): float(v) for k, v in value.items()}


def _check_features(saved: list[str], where: str) -> None:
    if tuple(saved) == FEATURES:
        return
    missing = [f for f in FEATURES if f not in saved]
    unknown = [f for f in saved if f not in FEATURES]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown to this code {', '.join(unknown)}")
        raise InvalidInput(
            f"{where} was trained on other features than this code computes: "
            f"{'; '.join(parts)}; retrain it"
        )
    raise InvalidInput(
        f"{where} reads the features in another order ({', '.join(saved)}) than this code "
        f"({', '.join(FEATURES)}); retrain it"
    )


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def _check_versions(versions: Mapping[str, Any], where: str) -> None:
    saved = str(versions["scikit-learn"])
    if _major_minor(saved) != _major_minor(sklearn.__version__):
        raise InvalidInput(
            f"{where} was saved with scikit-learn {saved} but this engine runs "
            f"scikit-learn {sklearn.__version__}; the major.minor versions must match: retrain it"
        )


def _check_pipeline(pipeline: object, where: str) -> None:
    ok = (
        isinstance(pipeline, Pipeline)
        and [name for name, _ in pipeline.steps] == ["scale", "logit"]
        and isinstance(pipeline.named_steps["scale"], StandardScaler)
        and isinstance(pipeline.named_steps["logit"], LogisticRegression)
    )
    if not ok:
        raise InvalidInput(f"{where} is not a fitted StandardScaler + LogisticRegression pipeline")
    logit = pipeline.named_steps["logit"]  # type: ignore[attr-defined]
    scale = pipeline.named_steps["scale"]  # type: ignore[attr-defined]
    coef = getattr(logit, "coef_", None)
    mean, std = getattr(scale, "mean_", None), getattr(scale, "scale_", None)
    classes = getattr(logit, "classes_", None)
    if (
        coef is None
        or np.shape(coef) != (1, len(FEATURES))
        or classes is None
        or list(np.asarray(classes)) != [0, 1]
        or not np.isfinite(coef).all()
        or mean is None
        or std is None
        or np.shape(mean) != (len(FEATURES),)
        or np.shape(std) != (len(FEATURES),)
    ):
        raise InvalidInput(
            f"{where} is not a fitted binary model over the {len(FEATURES)} features"
        )
