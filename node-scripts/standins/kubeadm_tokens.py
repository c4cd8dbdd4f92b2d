"""Stand-in kubeadm (a test double): bootstrap tokens (`kubeadm token ...`)."""
import json
import re

import joinkeeper_standin as st
from kubeadm_common import die, take_flags

DEFAULT_GROUP = "system:bootstrappers:kubeadm:default-node-token"
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
# kubeadm's check of --groups (bootstraputil.ValidateBootstrapGroupName).
GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")


def parse_groups(raw):
    """--groups: comma-separated extra groups, each system:bootstrappers:..."""
    if raw is None:
        return [DEFAULT_GROUP]
    groups = [g for g in raw.split(",") if g]
    for g in groups:
        if not GROUP_RE.match(g):
            die('bootstrap group "%s" is invalid (must match %s)' % (g, GROUP_RE.pattern))
    return groups


def join_command(state, token):
    return "kubeadm join %s --token %s     --discovery-token-ca-cert-hash %s " % (
        state["endpoint"], token, state["ca_cert_hash"])


def new_token(state, token, ttl, description, created, groups=(DEFAULT_GROUP,)):
    m = TOKEN_RE.match(token)
    if not m:
        die('the bootstrap token "%s" was not of the form "^([a-z0-9]{6})\\.([a-z0-9]{16})$"' % token)
    token_id, secret = m.group(1), m.group(2)
    if token_id in state["tokens"]:
        die('failed to create bootstrap token with name "bootstrap-token-%s": secrets '
            '"bootstrap-token-%s" already exists' % (token_id, token_id))
    st.remember_secret(state, token)
    state["tokens"][token_id] = {
        "secret": secret,
        "description": description,
        "created": created,
        "expires": None if ttl == 0 else created + ttl,
        "usages": ["authentication", "signing"],
        "groups": list(groups),
    }


def cmd_token(args):
    if not args:
        die("Error: must specify a token subcommand (create, delete, generate, list)")
    sub, rest = args[0], args[1:]
    if sub == "generate":
        print("%s.%s" % (st.rand(6), st.rand(16)))
        return
    if sub == "create":
        flags, positional = take_flags(rest, ("--ttl", "--description", "--usages", "--groups",
                                              "--config", "--certificate-key"),
                                       ("--print-join-command", "--dry-run"))
        try:
            ttl = st.parse_go_duration(flags.get("--ttl", "24h0m0s"))
        except ValueError as err:
            die('invalid argument "%s" for "--ttl" flag: %s' % (flags.get("--ttl"), err))
        token = positional[0] if positional else "%s.%s" % (st.rand(6), st.rand(16))
        groups = parse_groups(flags.get("--groups"))
        with st.locked_state() as state:
            new_token(state, token, ttl, flags.get("--description", ""), st.now(), groups)
            endpoint_line = join_command(state, token)
        if flags.get("--print-join-command") == "true":
            print(endpoint_line)
        else:
            print(token)
        return
    if sub == "list":
        flags, _ = take_flags(rest, ("-o", "--output"), ("--allow-missing-template-keys",))
        output = flags.get("-o", flags.get("--output", ""))
        with st.locked_state(write=False) as state:
            tokens = sorted(state["tokens"].items())
        if output == "json":
            for token_id, t in tokens:
                obj = {"kind": "BootstrapToken", "apiVersion": "output.kubeadm.k8s.io/v1alpha3",
                       "token": "%s.%s" % (token_id, t["secret"])}
                if t["description"]:
                    obj["description"] = t["description"]
                if t["expires"] is not None:
                    obj["expires"] = st.fmt_ts(t["expires"])
                obj["usages"] = t["usages"]
                obj["groups"] = t["groups"]
                print(json.dumps(obj, indent=4))
            return
        if output not in ("", "text"):
            die('error: unable to match a printer suitable for the output format "%s"' % output)
        rows = [["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"]]
        for token_id, t in tokens:
            ttl = None if t["expires"] is None else t["expires"] - st.now()
            rows.append(["%s.%s" % (token_id, t["secret"]), st.human_ttl(ttl),
                         "<never>" if t["expires"] is None else st.fmt_ts(t["expires"]),
                         ",".join(t["usages"]), t["description"] or "<none>", ",".join(t["groups"])])
        # text/tabwriter with minwidth 10, padding 3, as kubeadm uses.
        widths = [max(10, max(len(r[c]) for r in rows) + 3) for c in range(len(rows[0]) - 1)]
        for row in rows:
            print("".join(cell.ljust(widths[c]) for c, cell in enumerate(row[:-1])) + row[-1])
        return
    if sub == "delete":
        _, ids = take_flags(rest, ())
        if not ids:
            die("missing argument; 'token delete' is missing token of form "
                "[\"^([a-z0-9]{6})$\" \"^([a-z0-9]{6})\\.([a-z0-9]{16})$\"]")
        with st.locked_state() as state:
            for value in ids:
                token_id = value.split(".", 1)[0]
                if not re.match(r"^[a-z0-9]{6}$", token_id):
                    die('given token didn\'t match pattern "^([a-z0-9]{6})$" or '
                        '"^([a-z0-9]{6})\\.([a-z0-9]{16})$"')
                if token_id not in state["tokens"]:
                    die('failed to delete bootstrap token "%s": secrets "bootstrap-token-%s" not found'
                        % (token_id, token_id))
                del state["tokens"][token_id]
                print('bootstrap token "%s" deleted' % token_id)
        return
    die('Error: unknown command "%s" for "kubeadm token"' % sub)
