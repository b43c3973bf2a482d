"""Dependencies the routers inject (``Annotated[..., Depends(...)]``): settings and the registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from data_store.registry import Registry
from serving.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
