"""One workspace host per agency: the request's host picks the realm (FixMyStreet's cobrand by host).

With ``WORKSPACE_HOST_SUFFIX=lapor.example``:

- ``lapor.example`` is the central admins' workspace (realm ``CENTRAL``);
- ``kemenhub.lapor.example`` is KEMENHUB's: the first label is an agency code or
  alias, any case (``dephub.`` too, ``kemenpan-rb.`` for KEMENPAN RB); a unit's
  label (``dishubbekasi.``) reaches its top parent's host, where its staff sign in;
- anything else under the suffix is unknown: 404, never somebody else's login.

Aliases and units are redirected to the agency's own host, so each agency has
one address and one set of (host-only) cookies. Without the setting one host
serves everybody (realm ``ANY``) and the account alone decides the scope.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import Registry, compact

ANY = "*"  # no WORKSPACE_HOST_SUFFIX: every account signs in on the one host
CENTRAL = "@central"  # the bare suffix: central admins only


@dataclass(frozen=True)
class Realm:
    """Where a request arrived: ``key`` is ANY, CENTRAL or an agency code; ``redirect`` a better host."""

    key: str
    redirect: str | None = None


def top_agency(registry: Registry, code: str) -> str:
    """The agency at the top of ``code``'s ``parent`` chain (itself when it has no parent)."""
    seen = {code}
    while True:
        agency = registry.agencies.get(code)
        if agency is None or not agency.parent or agency.parent in seen:
            return code
        code = agency.parent
        seen.add(code)


def resolve(registry: Registry, suffix: str | None, host: str) -> Realm | None:
    """The realm of ``host`` (port ignored); None for a host that serves no workspace."""
    if not suffix:
        return Realm(ANY)
    suffix = suffix.strip(".").lower()
    name, colon, port = host.rpartition(":") if ":" in host and not host.endswith("]") else (host, "", "")
    name = name.strip(".").lower()
    if name == suffix:
        return Realm(CENTRAL)
    if not name.endswith("." + suffix):
        return None
    label = name[: -len(suffix) - 1]
    if not label or "." in label:
        return None
    code = registry.names.get(compact(label.upper()))
    if code is None or code not in registry.agencies:
        return None
    top = top_agency(registry, code)
    if label != top.lower():
        return Realm(top, redirect=host_for(top, suffix) + colon + port)
    return Realm(top)


def host_for(agency: str | None, suffix: str) -> str:
    """The workspace host of ``agency`` (None: the central admins')."""
    suffix = suffix.strip(".").lower()
    return suffix if agency is None else f"{agency.lower()}.{suffix}"


def realm_for_account(registry: Registry, agency: str | None) -> str:
    """The realm whose host an account signs in on: its agency's top parent, or CENTRAL."""
    return CENTRAL if agency is None else top_agency(registry, agency)


def admits(realm: str, registry: Registry, agency: str | None) -> bool:
    """True when an account of ``agency`` (None: central) may sign in on ``realm``'s host."""
    return realm == ANY or realm == realm_for_account(registry, agency)
