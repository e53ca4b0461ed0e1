"""`--dask` on the command line: the same files as a run in one process; bad values and an
unreachable scheduler are one line and exit 2; without it, dask is never imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli
from datagen import dataset

from rarity_score import cluster

pytest.importorskip("distributed")


@pytest.fixture
def feature_files(tmp_path: Path) -> tuple[Path, Path]:
    data = dataset("duplicates")
    np.save(tmp_path / "real.npy", data.real)
    np.save(tmp_path / "fake.npy", data.fake)
    return tmp_path / "real.npy", tmp_path / "fake.npy"


def _tables(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.suffix in (".csv", ".npz")
    }


def test_compare_on_a_local_cluster_writes_the_same_tables(capsys, feature_files, tmp_path):
    real, fake = feature_files
    common = ["compare", "--real", real, "--fake", f"a={fake}", "-k", "2", "--no-report", "-q"]
    code, _, err = run_cli(capsys, *common, "--out", tmp_path / "here")
    assert code == 0, err
    code, _, err = run_cli(capsys, *common, "--out", tmp_path / "there", "--dask", "local:2")
    assert code == 0, err
    here, there = _tables(tmp_path / "here"), _tables(tmp_path / "there")
    assert here and here == there
    assert not cluster.active()  # the run's cluster is gone with the run


@pytest.mark.parametrize("value", ["local:0", "local:x", "tcp://", "no such host!"])
def test_a_bad_dask_value_is_refused_before_any_work(capsys, feature_files, value):
    real, fake = feature_files
    code, out, err = run_cli(capsys, "score", "--real", real, "--fake", fake, "--dask", value)
    assert code == 2 and out == ""
    assert "--dask" in err and "Traceback" not in err


def test_an_unreachable_scheduler_is_one_line(capsys, feature_files, monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)
    real, fake = feature_files
    code, out, err = run_cli(
        capsys, "score", "--real", real, "--fake", fake, "--dask", "tcp://127.0.0.1:9"
    )
    assert_one_line_error(code, out, err, "--dask tcp://127.0.0.1:9", "no Dask scheduler")


def test_without_a_cluster_dask_is_never_imported(feature_files, tmp_path):
    real, fake = feature_files
    script = (
        "import sys\n"
        "import numpy as np\n"
        "import rarity_score\n"
        "from rarity_score.cli import main\n"
        f"r, f = np.load({str(real)!r}), np.load({str(fake)!r})\n"
        "rarity_score.evaluate(r, f, 2)\n"
        f"assert main(['score', '--real', {str(real)!r}, '--fake', {str(fake)!r}, '-q']) == 0\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)


def test_use_refuses_what_is_not_a_client():
    with pytest.raises(TypeError, match=r"distributed\.Client"), cluster.use(object()):
        pass


def test_a_scheduler_without_workers_is_one_line(monkeypatch):
    import distributed

    from rarity_score import evaluate

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)
    data = dataset("gaussian")
    with (
        distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as empty,
        distributed.Client(empty) as client,
        cluster.use(client),
        pytest.raises(ConnectionError, match="has no workers after 1 s"),
    ):
        evaluate(data.real, data.fake, 3)


def test_a_task_error_is_the_one_line_of_one_process(capsys, tmp_path):
    from imagegen import noise, write

    folder = tmp_path / "images"
    for index in range(6):
        write(folder / f"{index}.png", noise(index, (12, 12)))
    (folder / "9.png").write_bytes(b"not an image")
    argv = ["features", folder, "--extractor", "pixels", "--input-size", "6", "--strict"]
    argv += ["--shard-size", "3", "--no-cache", "-q", "-o"]
    here = run_cli(capsys, *argv, tmp_path / "here.npz")
    there = run_cli(capsys, *argv, tmp_path / "there.npz", "--dask", "local:2")
    assert_one_line_error(*here, "9.png")
    assert there == here  # Dask's own logs of the failed task stay quiet
