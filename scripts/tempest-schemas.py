#!/usr/bin/python3
"""Cinder's response schemas as Tempest keeps them, as JSON: the source of
volstate's OpenAPI document (src/api/openapi/), written by

    /usr/bin/python3 scripts/tempest-schemas.py > src/api/openapi/tempest-schemas.json

with Debian's tempest installed (apt-get install tempest). Tempest validates
every answer of its API tests against these; volstate publishes the same
contract and test/api/openapi.test.ts checks its answers against it. A test
regenerates this file and fails when it drifts from the installed Tempest.
"""
import importlib
import json
import pkgutil

import tempest
import tempest.lib.api_schema.response.volume as volume


def schemas():
    """Every response schema of Tempest's volume API: name → {microversion, status_code, response_body}."""
    mods = [(0, "", volume)]
    for info in pkgutil.walk_packages(volume.__path__, volume.__name__ + "."):
        sub = info.name[len(volume.__name__) + 1:]
        version, _, name = sub.partition(".")
        if version.startswith("v3_") and name:
            mods.append((int(version[3:]), name, importlib.import_module(info.name)))
        elif not info.ispkg:
            mods.append((0, sub, importlib.import_module(info.name)))
    # The base module (3.0) and the newest microversion of each: `volumes.show_volume`,
    # `v3_69.volumes.show_volume`; the ones between add nothing the newest lacks.
    newest = {}
    for minor, prefix, _ in mods:
        newest[prefix] = max(newest.get(prefix, 0), minor)
    mods = [m for m in mods if m[0] == 0 or m[0] == newest[m[1]]]
    out = {}
    for minor, prefix, mod in sorted(mods, key=lambda m: m[0]):
        for name in sorted(vars(mod)):
            value = getattr(mod, name)
            if name.startswith("_") or not isinstance(value, dict) or "status_code" not in value:
                continue
            out[f"v3_{minor}.{prefix}.{name}" if minor else f"{prefix}.{name}"] = {"microversion": f"3.{minor}", **value}
    return out


if __name__ == "__main__":
    version = getattr(tempest, "__version__", None)
    if version is None:
        from importlib.metadata import version as v
        version = v("tempest")
    print(json.dumps({"tempest": version, "schemas": schemas()}, indent=1, sort_keys=True))
