"""`genbench datasets` (the table) and `genbench datasets show NAME`, run in process under the
kit's top-level group so user errors exit with status 2 as they do from the shell."""

import io
import tarfile

import pytest
from click.testing import CliRunner
from PIL import Image

from stages.frame.cli import GenbenchGroup
from stages.commands.datasets import command


@pytest.fixture
def cli():
    group = GenbenchGroup("genbench")
    group.add_command(command)
    return group


def run(cli, args):
    return CliRunner().invoke(cli, args)


def put_cifar10_mirror(root):
    shard = root / "wds_cifar10" / "test" / "0.tar"
    shard.parent.mkdir(parents=True)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, format="PNG")
    with tarfile.open(shard, "w") as tar:
        for ext, data in (("png", buf.getvalue()), ("cls", b"3")):
            info = tarfile.TarInfo(f"a.{ext}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_table_lists_every_dataset_and_what_is_local(cli, tmp_path):
    put_cifar10_mirror(tmp_path)
    result = run(cli, ["datasets", "--data-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "group", "classes", "metric", "source", "local"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert len(rows) == 23  # 22 GenBench datasets and the embedded default
    assert rows["cifar-10"].split()[1:4] == ["Common", "10", "accuracy"]
    assert rows["cifar-10"].endswith("yes (webdataset)")
    assert rows["cifar-100"].endswith("no")
    assert rows["digits"].endswith("yes (embedded)")
    assert rows["voc-2007"].split()[1:4] == ["Common", "20", "map_11point"]
    assert rows["hateful-memes"].split()[1:4] == ["Rare", "2", "roc_auc"]
    assert rows["fer-2013"].split()[2] == "7"


def test_show_prints_classes_and_templates(cli):
    result = run(cli, ["datasets", "show", "CIFAR-10"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "name:      cifar-10" in out
    assert "classes (10):" in out and "     9  truck" in out
    assert "templates (18):" in out and "  a photo of the big {c}." in out


def test_unknown_dataset_exits_2_with_one_line(cli):
    result = run(cli, ["datasets", "show", "not-a-dataset"])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown dataset 'not-a-dataset'")
