"""Policy versions: register (upload a tarball, or a folder on the server's disk), list, get, download;
aliases (``production``, ``candidate``, any name) for the fleet or one robot."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Query, UploadFile
from fastapi import Path as Path_
from fastapi.responses import FileResponse

from data_store.registry import policies
from data_store.registry.artifacts import ArtifactError, safe_extract
from serving.auth import Admin, Viewer
from serving.deps import RegistryDep, SettingsDep
from serving.schemas import AliasIn, AliasOut, Offset, PolicyOut, RegisteredOut, RegisterFromPath

router = APIRouter(tags=["policies"])
ScopePattern = r"^(fleet|robot:[A-Za-z0-9_.:@-]{1,128})$"


def _verify(folder: Path) -> None:
    from vla.manifest import verify_artifact  # no torch: the manifest check only

    verify_artifact(folder)


@router.post("/policies", status_code=201, response_model=RegisteredOut)
def upload_policy(
    registry: RegistryDep, settings: SettingsDep, caller: Admin, file: Annotated[UploadFile, File()]
) -> RegisteredOut:
    """Register the artifact in an uploaded ``.tar.gz`` (verified against its manifest). Idempotent."""
    if file.size is not None and file.size > settings.max_upload_bytes:
        raise HTTPException(413, f"the tarball is {file.size} bytes; the limit is {settings.max_upload_bytes}")
    with tempfile.TemporaryDirectory(prefix=".upload-", dir=registry.artifacts.root) as tmp:
        folder = safe_extract(file.file, Path(tmp), max_bytes=settings.max_upload_bytes)
        with registry.session() as s:
            row, created = policies.register_policy(s, registry.artifacts, folder, by=caller.name, verify=_verify)
            return RegisteredOut(policy=PolicyOut.model_validate(row), created=created)


@router.post("/policies/from-path", status_code=201, response_model=RegisteredOut)
def register_from_path(registry: RegistryDep, caller: Admin, body: RegisterFromPath) -> RegisteredOut:
    """Register an artifact folder already on the server's disk (a trainer on the same machine)."""
    folder = Path(body.path)
    if not folder.is_dir():
        raise HTTPException(422, f"{body.path}: not a folder on the server")
    with registry.session() as s:
        row, created = policies.register_policy(
            s, registry.artifacts, folder, by=caller.name, version=body.version, verify=_verify
        )
        return RegisteredOut(policy=PolicyOut.model_validate(row), created=created)


@router.get("/policies", response_model=list[PolicyOut])
def list_policies(
    registry: RegistryDep, _: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 200, offset: Offset = 0
) -> list[PolicyOut]:
    with registry.session() as s:
        return [PolicyOut.model_validate(r) for r in policies.list_policies(s, limit=limit, offset=offset)]


@router.get("/policies/{ref}", response_model=PolicyOut)
def get_policy(
    registry: RegistryDep,
    _: Viewer,
    ref: str,
    robot_id: Annotated[str | None, Query(max_length=128)] = None,
) -> PolicyOut:
    """A version by name, or by alias (the robot's own first when ``robot_id`` is given, then the fleet's)."""
    with registry.session() as s:
        return PolicyOut.model_validate(policies.resolve(s, ref, robot_id=robot_id))


@router.get("/policies/{version}/download", response_class=FileResponse)
def download_policy(registry: RegistryDep, _: Viewer, version: str) -> FileResponse:
    """The artifact as a flat ``.tar.gz`` (``version`` may be a fleet alias); ``X-Artifact-Sha256`` is the sha256
    of its ``manifest.json``, ``X-Policy-Version`` the version."""
    with registry.session() as s:
        row = policies.resolve(s, version)
        digest, version = row.sha256, row.version
    try:
        path = registry.artifacts.tarball(digest)
    except ArtifactError as e:  # registered, but its files are gone from the artifact store
        raise HTTPException(404, f"{version}: {e}") from None
    return FileResponse(
        path,
        media_type="application/gzip",
        filename=f"{version}.tar.gz",
        headers={"X-Artifact-Sha256": digest, "X-Policy-Version": version},
    )


@router.get("/aliases", response_model=list[AliasOut])
def list_aliases(
    registry: RegistryDep, _: Viewer, scope: Annotated[str | None, Query(pattern=ScopePattern)] = None
) -> list[AliasOut]:
    with registry.session() as s:
        return [AliasOut.model_validate(a) for a in policies.list_aliases(s, scope)]


@router.put("/aliases/{scope}/{name}", response_model=AliasOut)
def set_alias(
    registry: RegistryDep,
    caller: Admin,
    scope: Annotated[str, Path_(pattern=ScopePattern)],
    name: Annotated[str, Path_(pattern=r"^[A-Za-z0-9_.-]{1,64}$")],
    body: AliasIn,
) -> AliasOut:
    """Point an alias (``fleet`` or ``robot:<id>`` scope) at a version, e.g. ``candidate``."""
    with registry.session() as s:
        return AliasOut.model_validate(policies.set_alias(s, scope, name, body.version, by=caller.name, why=body.why))
