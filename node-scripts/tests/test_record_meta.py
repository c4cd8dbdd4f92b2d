"""The join record's metadata (docs/contracts.md): publish and regenerate write the String
parameter <prefix>/<cluster>/join-record-meta right after the record, describing it without its
secret, so that the functions never need to decrypt the record."""
import json
import os

from conftest import VENV_BIN
from contract import published


def meta_of(jk):
    out = jk.tool(os.path.join(VENV_BIN, "aws"), "ssm", "get-parameter", "--name",
                  "%s/%s/join-record-meta" % (jk.prefix, jk.cluster), "--output", "json").stdout
    return json.loads(out)["Parameter"]


def check_meta(jk, proc):
    record_param = jk.get_parameter()
    record = json.loads(record_param["Value"])
    param = meta_of(jk)
    assert param["Type"] == "String", "the metadata is not secret: no KMS key is needed to read it"
    meta = json.loads(param["Value"])
    assert meta == {
        "version": 1,
        "cluster": jk.cluster,
        "token_id": record["token_id"],
        "created_at": record["created_at"],
        "expires_at": record["expires_at"],
        "record_version": record_param["Version"],
        "written_by": jk.control_plane_id,
    }
    assert published(proc.stdout)[1:] == (meta["token_id"], meta["expires_at"])
    assert record["token_secret"] not in param["Value"]
    return meta, param


def test_publish_writes_the_meta_of_the_record_it_wrote(jk):
    proc = jk.publish(ttl=7200)
    meta, param = check_meta(jk, proc)
    assert meta["record_version"] == 1 and param["Version"] == 1


def test_regenerate_rewrites_the_meta_with_the_new_record_version(jk):
    jk.publish()
    first = meta_of(jk)
    proc = jk.regenerate(ttl=3600)
    meta, param = check_meta(jk, proc)
    assert meta["record_version"] == 2
    assert param["Version"] == first["Version"] + 1
    assert meta["token_id"] != json.loads(first["Value"])["token_id"]
