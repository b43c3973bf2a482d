"""Policy artifacts: exact round trip, manifest, tamper and mismatch refusals that name the culprit, tarballs."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from vla_helpers import SPEC, observations, tiny_policy

from data_store.digest import sha256_file
from vla.artifact import ArtifactError, load_artifact, pack_artifact, save_artifact, unpack_artifact, verify_artifact
from vla.manifest import PAYLOAD, write_manifest


def _saved(tmp_path: Path, **kw: object) -> Path:
    d = tmp_path / "policy"
    save_artifact(
        tiny_policy(seed=1),
        d,
        parent_version="vla-parent",
        training_run="run-1",
        dataset_snapshot="snap-1",
        metrics={"success_rate": 0.4},
        **kw,
    )  # type: ignore[arg-type]
    return d


def test_round_trip_is_exact(tmp_path: Path) -> None:
    policy = tiny_policy(seed=1)
    version = save_artifact(
        policy, tmp_path / "p", parent_version=None, training_run="r", dataset_snapshot="s", metrics={}
    )
    loaded = load_artifact(tmp_path / "p")
    assert loaded.version == version == policy.version and version.startswith("vla-")
    assert loaded.config == policy.config and loaded.norm_stats == policy.norm_stats and loaded.spec == SPEC
    for name, tensor in policy.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    batch = observations(4)
    assert torch.equal(loaded.logits(batch), policy.logits(batch))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a1, t1, lp1 = policy.sample(batch, 1.6, generator=g1)
    a2, t2, lp2 = loaded.sample(batch, 1.6, generator=g2)
    np.testing.assert_array_equal(a1, a2)
    assert torch.equal(t1, t2) and torch.equal(lp1, lp2)


def test_manifest_lists_hashes_lineage_and_spec(tmp_path: Path) -> None:
    d = _saved(tmp_path)
    m = verify_artifact(d)
    assert set(m["files"]) == set(PAYLOAD)
    for name in PAYLOAD:
        assert m["files"][name]["sha256"] == sha256_file(d / name)
    assert (m["parent_version"], m["training_run"], m["dataset_snapshot"]) == ("vla-parent", "run-1", "snap-1")
    assert m["metrics"] == {"success_rate": 0.4} and m["robot_spec"]["action_dim"] == 4
    stats = json.loads((d / "norm_stats.json").read_text())
    assert stats["tokenizer"]["n_bins"] == 256 and len(stats["state"]["mean"]) == 4
    assert not any(p.name.endswith((".pt", ".pkl", ".bin")) for p in d.iterdir())


def test_same_content_same_version_and_no_overwrite_by_accident(tmp_path: Path) -> None:
    v1 = save_artifact(tiny_policy(seed=1), tmp_path / "a")
    v2 = save_artifact(tiny_policy(seed=1), tmp_path / "b", training_run="other run")
    v3 = save_artifact(tiny_policy(seed=2), tmp_path / "c")
    assert v1 == v2 != v3
    with pytest.raises(ArtifactError, match="already there"):
        save_artifact(tiny_policy(seed=2), tmp_path / "a")
    assert save_artifact(tiny_policy(seed=2), tmp_path / "a", overwrite=True) == v3


@pytest.mark.parametrize("name", PAYLOAD)
def test_a_tampered_file_is_refused_naming_it(tmp_path: Path, name: str) -> None:
    d = _saved(tmp_path)
    data = bytearray((d / name).read_bytes())
    data[-3] ^= 0x01  # one flipped bit, same size
    (d / name).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=name.replace(".", r"\.") + ": sha256"):
        verify_artifact(d)
    with pytest.raises(ArtifactError, match=name.replace(".", r"\.")):
        load_artifact(d)


def test_a_missing_file_or_manifest_is_refused(tmp_path: Path) -> None:
    d = _saved(tmp_path)
    (d / "norm_stats.json").unlink()
    with pytest.raises(ArtifactError, match=r"norm_stats\.json: missing"):
        load_artifact(d)
    (d / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match=r"manifest\.json: missing"):
        verify_artifact(d)


def test_a_config_that_does_not_match_the_weights_is_refused_naming_the_tensor(tmp_path: Path) -> None:
    d = _saved(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["model"]["hidden"] = 48  # the weights were trained with 32
    (d / "config.json").write_text(json.dumps(cfg))
    # re-sign the manifest, as a careless exporter would: the hashes now pass, the shapes must not
    write_manifest(
        d,
        parent_version=None,
        training_run=None,
        dataset_snapshot=None,
        metrics=None,
        robot_spec=None,
        created_at="now",
    )
    with pytest.raises(
        ArtifactError,
        match=r"model\.safetensors: tensor 'action_queries' has shape \[32, 32\], config\.json implies \[32, 48\]",
    ):
        load_artifact(d)

    cfg["model"]["hidden"] = 32
    cfg["model"]["fusion_layers"] = 2  # a layer the weights do not have
    (d / "config.json").write_text(json.dumps(cfg))
    write_manifest(
        d,
        parent_version=None,
        training_run=None,
        dataset_snapshot=None,
        metrics=None,
        robot_spec=None,
        created_at="now",
    )
    with pytest.raises(ArtifactError, match=r"tensor 'fusion\.layers\.1\.[\w.]+' .* is missing"):
        load_artifact(d)


def test_tarball_round_trip_and_unsafe_members_refused(tmp_path: Path) -> None:
    d = _saved(tmp_path)
    tar = pack_artifact(d, tmp_path / "policy.tar.gz")
    manifest = unpack_artifact(tar, tmp_path / "unpacked")
    assert manifest["version"] == verify_artifact(d)["version"]
    assert torch.equal(
        load_artifact(tmp_path / "unpacked").logits(observations(1)), load_artifact(d).logits(observations(1))
    )

    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as t:
        payload = b"owned"
        info = tarfile.TarInfo("../outside.txt")
        info.size = len(payload)
        t.addfile(info, io.BytesIO(payload))
    with pytest.raises(ArtifactError, match=r"unexpected member '\.\./outside\.txt'"):
        unpack_artifact(evil, tmp_path / "x")
    assert not (tmp_path / "outside.txt").exists()
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(ArtifactError, match="not a readable"):
        unpack_artifact(tmp_path / "junk.tar.gz", tmp_path / "y")


def test_verify_needs_no_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    d = _saved(tmp_path)
    code = (
        "import sys; sys.modules['torch'] = None\n"  # importing torch now raises
        "from vla.artifact import verify_artifact\n"
        f"print(verify_artifact({str(d)!r})['version'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == verify_artifact(d)["version"]
