"""joinkeeper-revoke-tokens: after a suspected leak, every joinkeeper token of the cluster but the
current record's is deleted; other tokens are never touched; a record that moved on is refused."""
import json
import os

from conftest import STANDINS
from contract import published


def create_token(jk, description):
    """A token made directly with the stand-in kubeadm (an operator's, another cluster's...)."""
    token = jk.tool(os.path.join(STANDINS, "kubeadm"), "token", "create", "--ttl", "2h",
                    "--description", description).stdout.strip()
    jk.extra_secrets.add(token.split(".", 1)[1])
    return token.split(".", 1)[0]


def revoke(jk, keep):
    return jk.run("joinkeeper-revoke-tokens", "--cluster", jk.cluster, "--prefix", jk.prefix,
                  "--keep-token-id", keep)


def test_revokes_every_joinkeeper_token_but_the_current_one(jk):
    first = published(jk.publish().stdout)[1]
    second = published(jk.regenerate().stdout)[1]
    current = published(jk.regenerate().stdout)[1]
    # regenerate's own grace period keeps the previous record's token.
    assert {first, second, current} - set(jk.state()["tokens"]) == {first}
    stray = create_token(jk, "joinkeeper:%s created_at=2020-01-01T00:00:00Z" % jk.cluster)
    operator = create_token(jk, "break-glass token of the on-call")
    other = create_token(jk, "joinkeeper:other-%s created_at=2020-01-01T00:00:00Z" % jk.cluster)

    proc = revoke(jk, current)

    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert sorted(lines[:-2]) == sorted(["revoked token_id=%s" % t for t in (second, stray)])
    assert lines[-2] == "joins-seen 0"  # no kubelet joined this stand-in cluster
    assert lines[-1] == "revoke-tokens cluster=%s kept=%s revoked=2" % (jk.cluster, current)
    assert set(jk.state()["tokens"]) == {current, operator, other}
    # Nothing left to revoke: a second run deletes nothing.
    again = revoke(jk, current)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["joins-seen 0", "revoke-tokens cluster=%s kept=%s revoked=0" % (jk.cluster, current)]


def test_kurl_tokens_without_a_description_are_found_through_the_history(jk):
    jk.publish()
    current = published(jk.regenerate().stdout)[1]
    # A token minted by kURL carries no description; its id is in the record's history.
    history = jk.history()
    old = json.loads(history[0]["Value"])["token_id"]
    with open(os.path.join(jk.kube, "state.json")) as fh:
        state = json.load(fh)
    state["tokens"][old]["description"] = ""
    with open(os.path.join(jk.kube, "state.json"), "w") as fh:
        json.dump(state, fh)

    proc = revoke(jk, current)

    assert proc.returncode == 0, proc.stderr
    assert "revoked token_id=%s" % old in proc.stdout.splitlines()
    assert set(jk.state()["tokens"]) == {current}


def test_refuses_when_the_record_names_another_token_or_the_token_is_not_here(jk):
    first = published(jk.publish().stdout)[1]
    current = published(jk.regenerate().stdout)[1]
    before = set(jk.state()["tokens"])

    moved_on = revoke(jk, first)
    assert moved_on.returncode == 3
    assert "changed since" in moved_on.stderr
    assert moved_on.stdout == ""

    # The record names a token this control plane does not have.
    state_path = os.path.join(jk.kube, "state.json")
    with open(state_path) as fh:
        state = json.load(fh)
    del state["tokens"][current]
    with open(state_path, "w") as fh:
        json.dump(state, fh)
    absent = revoke(jk, current)
    assert absent.returncode == 3
    assert "not on this control plane" in absent.stderr
    assert set(jk.state()["tokens"]) == before - {current}


def test_rejects_bad_arguments(jk):
    for args in (["--cluster", "bad name", "--keep-token-id", "abcdef"],
                 ["--cluster", jk.cluster, "--keep-token-id", "ABCDEF"],
                 ["--cluster", jk.cluster, "--keep-token-id", "abcdef.0123456789abcdef"],
                 ["--cluster", jk.cluster]):
        proc = jk.run("joinkeeper-revoke-tokens", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stdout == ""
