"""tar_samples groups consecutive tar members by key; the pool and the CLIP benchmark mirrors cut keys their own way."""

import io
import tarfile

from genbench.datasets.webdataset_source import sample_key
from genbench.retrieval.pool import _member_key
from genbench.webdataset import tar_samples


def _tar(path, names):
    with tarfile.open(path, "w") as tar:
        for name in names:
            if name.endswith("/"):
                info = tarfile.TarInfo(name.rstrip("/"))
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                continue
            payload = name.encode()
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_tar_samples_groups_runs_of_one_key(tmp_path):
    _tar(tmp_path / "s.tar", ["d/", "s1.jpg", "s1.cls", "skipped", "s2.txt", "s2.json", "s1.txt"])
    with tarfile.open(tmp_path / "s.tar") as tar:
        groups = [(key, [(ext, tar.extractfile(m).read()) for ext, m in members])
                  for key, members in tar_samples(tar, _member_key)]
    # the directory and the dotless name are skipped; s1 after s2 is a sample of its own (archive order)
    assert groups == [("s1", [("jpg", b"s1.jpg"), ("cls", b"s1.cls")]),
                      ("s2", [("txt", b"s2.txt"), ("json", b"s2.json")]),
                      ("s1", [("txt", b"s1.txt")])]


def test_the_two_key_rules():
    assert _member_key("shard/000.Tar.GZ") == ("000", "tar.gz") and _member_key("shard/nodot") is None
    assert sample_key("shard/000.JPG") == ("shard/000", "jpg") and sample_key("nodot") == ("nodot", "")
