"""Finding the registered image domains (the contract is :mod:`idinvert_plugins.domain_spec`).

The core never names a domain: it asks for one by name (a ``--domain`` option, a ``pipeline.json``
``"domain"``), by a generator's naming rule (:func:`domain_for_model`), by the heads of a classifier
(:func:`domain_of_heads`), or takes :func:`default_domain`, the first domain registered in plugin load order
(the built-in plugins load first, so the bundled domain is the default while it is installed).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .domain_spec import AttributeSpec, Domain, check_domain
from .plugins import UnknownNameError, get_plugins

KIND = "domain"


def domain_names() -> list[str]:
    """Names of the registered domains, in load order."""
    return list(get_plugins().items.get(KIND, {}))


def domains() -> list[Domain]:
    """The registered domains, in load order."""
    return [r.obj for r in get_plugins().items.get(KIND, {}).values()]


def default_domain() -> Domain:
    """The first registered domain; raises :class:`LookupError` naming the fix when there is none."""
    found = domains()
    if not found:
        raise LookupError("no image domain is registered: the built-in domain plugin failed to load (see "
                          "`idinvert plugins`) or a plugin providing register_domains is needed")
    return found[0]


def get_domain(name: str | Domain | None = None) -> Domain:
    """The domain ``name`` (a :class:`Domain` is returned as is; None: :func:`default_domain`). An unknown name
    raises :class:`~idinvert_plugins.plugins.UnknownNameError` listing the known ones."""
    if isinstance(name, Domain):
        return name
    if name is None:
        return default_domain()
    return get_plugins().get(KIND, str(name))


def domain_for_model(model: str | Path, resolution: int | None = None) -> Domain | None:
    """The first domain whose naming rule (:meth:`Domain.matches`) claims generator ``model`` at
    ``resolution``, or None."""
    return next((d for d in domains() if d.matches(str(model), resolution)), None)


def domain_of_heads(names: Iterable[str]) -> Domain | None:
    """The first domain whose attribute schema holds every one of ``names`` (a classifier's heads), or None."""
    wanted = set(names)
    if not wanted:
        return None
    return next((d for d in domains() if wanted <= set(d.attribute_specs)), None)


__all__ = ["AttributeSpec", "Domain", "UnknownNameError", "check_domain", "default_domain", "domain_for_model",
           "domain_names", "domain_of_heads", "domains", "get_domain"]
