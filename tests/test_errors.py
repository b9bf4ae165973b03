"""One exception tree: every exception class the product defines descends from
LivecartError (checkout/errors.py), and every refusal is a `Refused` the web layer answers
as problem+json in one place."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from checkout.errors import LivecartError, Refused

PACKAGES = ("checkout", "live", "overlay")


def _product_modules() -> list[str]:
    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            names.append(info.name)
    return names


def test_every_exception_the_product_defines_is_in_the_tree() -> None:
    strays = []
    for name in _product_modules():
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (cls.__module__ == name and issubclass(cls, BaseException)
                    and not issubclass(cls, LivecartError)):
                strays.append(f"{name}.{cls.__name__}")
    assert not strays, strays


@pytest.mark.parametrize("refusal", [
    "checkout.catalog:CatalogError", "live.streams.store:StreamError",
    "live.video.service:VideoError", "live.web.problems:Problem"])
def test_refusals_share_one_shape(refusal: str) -> None:
    module, name = refusal.split(":")
    cls = getattr(importlib.import_module(module), name)
    error = cls(409, "some-kind", "why")
    assert isinstance(error, Refused)
    assert (error.status, error.kind, error.detail) == (409, "some-kind", "why")
