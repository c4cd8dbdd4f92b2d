"""`kubeadm token list` output and the record's parameter history: token-expiry, revocable."""
import json
import sys

from .common import TOKEN_ID_RE, Invalid, fail, fmt_ts, parse_any_ts, parse_ts
from .record import load_record


# --- kubeadm token list ---------------------------------------------------------------------

def parse_token_stream(text):
    """`kubeadm token list -o json` prints one indented JSON object per token, back to back
    (not an array). Returns a list of dicts (an array is accepted too)."""
    decoder = json.JSONDecoder()
    items, pos, text = [], 0, text.strip()
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except ValueError:
            raise Invalid("token list is not a JSON stream (near character %d)" % pos)
        if isinstance(obj, list):
            items.extend(obj)
        elif isinstance(obj, dict) and isinstance(obj.get("items"), list):
            items.extend(obj["items"])
        else:
            items.append(obj)
    tokens = []
    for obj in items:
        if not isinstance(obj, dict):
            continue
        token = obj.get("token")
        if not isinstance(token, str):
            continue
        token_id = token.split(".", 1)[0]
        if not TOKEN_ID_RE.fullmatch(token_id):
            continue
        expires = None
        if isinstance(obj.get("expires"), str):
            try:
                expires = parse_any_ts(obj["expires"])
            except Invalid:
                expires = None
        groups = obj.get("groups") if isinstance(obj.get("groups"), list) else []
        tokens.append({"id": token_id, "description": obj.get("description") or "", "expires": expires,
                       "groups": [g for g in groups if isinstance(g, str)]})
    return tokens


# --- parameter history ----------------------------------------------------------------------

def history_records(path, cluster=None):
    """Valid records from `aws ssm get-parameter-history --with-decryption --output json`,
    oldest version first, as (version, record, created_epoch)."""
    with open(path) as fh:
        try:
            data = json.load(fh)
        except ValueError:
            raise Invalid("parameter history is not JSON")
    out = []
    for entry in data.get("Parameters", []) if isinstance(data, dict) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("Version"), int):
            continue
        try:
            record = load_record(entry.get("Value") or "", cluster)
        except Invalid:
            continue
        out.append((entry["Version"], record, parse_ts(record["created_at"])))
    out.sort(key=lambda item: item[0])
    return out


def cmd_token_expiry(args):
    for token in parse_token_stream(sys.stdin.read()):
        if token["id"] == args.token_id and token["expires"] is not None:
            sys.stdout.write(fmt_ts(token["expires"]) + "\n")
            return
    fail("token %s not found in the token list (or it never expires)" % args.token_id, 5)


def cmd_revocable(args):
    """Token ids to revoke: joinkeeper's tokens for this cluster that are older than the record
    before the current one. See the header of joinkeeper-regenerate for the rule."""
    history = history_records(args.history, args.cluster)
    with open(args.tokens) as fh:
        tokens = parse_token_stream(fh.read())
    protected = {args.new_token_id}
    for _, record, _ in history[-2:]:
        protected.add(record["token_id"])
    if len(history) < 2:
        return  # no previous record: nothing is past its grace period yet
    prev_version, prev_record, cutoff = history[-2]
    in_history = {}
    for version, record, created in history:
        in_history.setdefault(record["token_id"], (version, created))
    marker = "joinkeeper:%s" % args.cluster
    for token in tokens:
        token_id = token["id"]
        if token_id in protected:
            continue
        reason = None
        if token_id in in_history:
            version, created = in_history[token_id]
            if version < prev_version or created < cutoff:
                reason = "from record version %d" % version
        else:
            words = token["description"].split()
            if words and words[0] == marker:
                created = None
                for word in words[1:]:
                    if word.startswith("created_at="):
                        try:
                            created = parse_ts(word[len("created_at="):])
                        except Invalid:
                            created = None
                if created is not None and created < cutoff:
                    reason = "created %s" % fmt_ts(created)
        if reason:
            sys.stdout.write("%s %s\n" % (token_id, reason.replace(" ", "_")))
