"""joinkeeper policy rules for cfn-lint (loaded with `cfn-lint --append-rules infra/policy/rules`).

They play the part of a cfn-guard rule set, without building cfn-guard: each rule is an error
(E9xxx), so `cfn-lint --non-zero-exit-code error` fails the build when one matches. README.md
("Policy rules") lists them; test/policy.test.ts proves that deliberately bad templates in
test/fixtures/policy are rejected and the good ones pass.

Values built with intrinsic functions (Fn::Join, Fn::Sub, Ref, Fn::GetAtt) are flattened to a
string with {REF} placeholders before they are matched, so an ARN assembled by CDK is still seen.
"""
from fnmatch import fnmatchcase

from cfnlint.rules import CloudFormationLintRule, RuleMatch

SEND_COMMAND = "ssm:sendcommand"
LIFECYCLE_ACTIONS = ("autoscaling:completelifecycleaction", "autoscaling:recordlifecycleactionheartbeat")
KMS_DECRYPT = "kms:decrypt"
PARAMETER_ACTIONS = (
    "ssm:getparameter",
    "ssm:getparameters",
    "ssm:getparametersbypath",
    "ssm:putparameter",
    "ssm:deleteparameter",
    "ssm:deleteparameters",
    "ssm:getparameterhistory",
)
ROLE_TAG_KEY = "ssm:resourcetag/joinkeeper:role"
CLUSTER_TAG_KEY = "aws:resourcetag/joinkeeper:cluster"


def flatten(value):
    """A string view of a template value; intrinsic functions become their text or {REF}."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return str(value)
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Fn::Join" and isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], list):
            return flatten(arg[0]).join(flatten(p) for p in arg[1])
        if fn == "Fn::Sub":
            return flatten(arg[0] if isinstance(arg, list) else arg)
        if fn in ("Ref", "Fn::GetAtt", "Fn::ImportValue", "Fn::Select", "Fn::If", "Fn::FindInMap"):
            return "{REF}"
    return "{REF}"


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def actions_of(statement):
    return [flatten(a).lower() for a in as_list(statement.get("Action"))]


def grants(statement, action):
    """True when the statement's Action (wildcards included) covers `action`."""
    return any(fnmatchcase(action, pattern) for pattern in actions_of(statement))


def resources_of(statement):
    return [flatten(r) for r in as_list(statement.get("Resource"))]


def condition_keys(statement):
    keys = set()
    cond = statement.get("Condition")
    if isinstance(cond, dict):
        for block in cond.values():
            if isinstance(block, dict):
                keys.update(k.lower() for k in block.keys())
    return keys


def policy_documents(cfn):
    """(path, document) for every inline or managed IAM policy document in the template."""
    docs = []
    for name, res in cfn.get_resources(["AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"]).items():
        doc = res.get("Properties", {}).get("PolicyDocument")
        if isinstance(doc, dict):
            docs.append((["Resources", name, "Properties", "PolicyDocument"], doc))
    for name, res in cfn.get_resources(["AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"]).items():
        for i, pol in enumerate(as_list(res.get("Properties", {}).get("Policies"))):
            if isinstance(pol, dict) and isinstance(pol.get("PolicyDocument"), dict):
                docs.append((["Resources", name, "Properties", "Policies", i, "PolicyDocument"], pol["PolicyDocument"]))
    return docs


def allow_statements(cfn):
    for path, doc in policy_documents(cfn):
        for i, st in enumerate(as_list(doc.get("Statement"))):
            if isinstance(st, dict) and st.get("Effect") == "Allow":
                yield path + ["Statement", i], st


class _Rule(CloudFormationLintRule):
    tags = ["joinkeeper", "iam"]
    source_url = "infra/README.md#policy-rules"

    # The actions a statement must grant (one of them, wildcards included) for `check` to look at
    # it; empty: every Allow statement.
    granting = ()

    def check(self, path, statement):  # pragma: no cover - overridden
        return []

    def match(self, cfn):
        matches = []
        for path, st in allow_statements(cfn):
            if self.granting and not any(grants(st, a) for a in self.granting):
                continue
            for msg in self.check(path, st):
                matches.append(RuleMatch(path, msg))
        return matches


class SendCommandNotOnEverything(_Rule):
    """ssm:SendCommand must never be allowed on Resource "*" (nor through NotResource)."""

    id = "E9101"
    shortdesc = "ssm:SendCommand on every resource"
    description = 'An Allow statement grants ssm:SendCommand (possibly through a wildcard action) on Resource "*" or with NotResource'
    granting = (SEND_COMMAND,)

    def check(self, path, st):
        if "NotResource" in st:
            return ["ssm:SendCommand allowed with NotResource: name the documents and instances instead"]
        if any(r == "*" for r in resources_of(st)):
            return ['ssm:SendCommand allowed on Resource "*": restrict it to joinkeeper\'s documents and tagged instances']
        return []


class SendCommandInstancesByRoleTag(_Rule):
    """Instances a command may be sent to are selected by the joinkeeper:role tag."""

    id = "E9102"
    shortdesc = "ssm:SendCommand on instances without the joinkeeper:role condition"
    description = "An Allow statement grants ssm:SendCommand on EC2 instances without a condition on ssm:resourceTag/joinkeeper:role"
    granting = (SEND_COMMAND,)

    def check(self, path, st):
        on_instances = [r for r in resources_of(st) if ":instance/" in r or ":managed-instance/" in r]
        if on_instances and ROLE_TAG_KEY not in condition_keys(st):
            return ["ssm:SendCommand on instances must be conditioned on ssm:resourceTag/joinkeeper:role"]
        return []


class SendCommandNamedDocuments(_Rule):
    """Documents are named one by one; no wildcard documents."""

    id = "E9103"
    shortdesc = "ssm:SendCommand on a wildcard document"
    description = "An Allow statement grants ssm:SendCommand on documents matched by a wildcard"
    granting = (SEND_COMMAND,)

    def check(self, path, st):
        bad = [r for r in resources_of(st) if ":document/" in r and "*" in r.split(":document/", 1)[1]]
        if bad:
            return ["ssm:SendCommand on wildcard documents %s: name joinkeeper's documents" % ", ".join(bad)]
        return []


class LifecycleActionsOnTaggedGroups(_Rule):
    id = "E9104"
    shortdesc = "lifecycle actions without the joinkeeper:cluster tag condition"
    description = "CompleteLifecycleAction / RecordLifecycleActionHeartbeat must be conditioned on aws:ResourceTag/joinkeeper:cluster"
    granting = LIFECYCLE_ACTIONS

    def check(self, path, st):
        if CLUSTER_TAG_KEY not in condition_keys(st):
            return ["autoscaling lifecycle actions must be conditioned on aws:ResourceTag/joinkeeper:cluster"]
        return []


class KmsDecryptViaSsm(_Rule):
    id = "E9105"
    shortdesc = "kms:Decrypt without kms:ViaService"
    description = "kms:Decrypt must be conditioned on kms:ViaService (the SecureString key, used through SSM only)"
    granting = (KMS_DECRYPT,)

    def check(self, path, st):
        if "kms:viaservice" not in condition_keys(st):
            return ["kms:Decrypt must be conditioned on kms:ViaService"]
        return []


class NoAdminOrWildcardParameters(_Rule):
    id = "E9106"
    shortdesc = "administrator-like or unscoped parameter access"
    description = 'Action "*", Allow with NotAction, or Parameter Store actions on Resource "*"'

    def check(self, path, st):
        out = []
        if "*" in actions_of(st):
            out.append('Allow with Action "*"')
        if "NotAction" in st:
            out.append("Allow with NotAction")
        if any(grants(st, a) for a in PARAMETER_ACTIONS) and any(r == "*" for r in resources_of(st)):
            out.append('Parameter Store actions on Resource "*": scope them to the parameter prefix')
        return out


class Imdsv2Required(CloudFormationLintRule):
    id = "E9107"
    shortdesc = "IMDSv2 not required"
    description = "Launch templates must set MetadataOptions.HttpTokens to required"
    tags = ["joinkeeper", "ec2"]
    source_url = "infra/README.md#policy-rules"

    def match(self, cfn):
        matches = []
        for name, res in cfn.get_resources(["AWS::EC2::LaunchTemplate"]).items():
            data = res.get("Properties", {}).get("LaunchTemplateData", {})
            tokens = (data.get("MetadataOptions") or {}).get("HttpTokens") if isinstance(data, dict) else None
            if tokens != "required":
                matches.append(RuleMatch(["Resources", name, "Properties", "LaunchTemplateData"], "launch template %s does not require IMDSv2" % name))
        return matches


class LaunchHookAbandonsByDefault(CloudFormationLintRule):
    id = "E9108"
    shortdesc = "launch lifecycle hook continues by default"
    description = "A launch lifecycle hook must default to ABANDON, so a worker without a decision is replaced, not put in service"
    tags = ["joinkeeper", "autoscaling"]
    source_url = "infra/README.md#policy-rules"

    @staticmethod
    def _bad(hook):
        return (
            isinstance(hook, dict)
            and hook.get("LifecycleTransition") == "autoscaling:EC2_INSTANCE_LAUNCHING"
            and hook.get("DefaultResult", "ABANDON") != "ABANDON"
        )

    def match(self, cfn):
        matches = []
        for name, res in cfn.get_resources(["AWS::AutoScaling::LifecycleHook"]).items():
            if self._bad(res.get("Properties", {})):
                matches.append(RuleMatch(["Resources", name, "Properties", "DefaultResult"], "launch hook %s must default to ABANDON" % name))
        for name, res in cfn.get_resources(["AWS::AutoScaling::AutoScalingGroup"]).items():
            for i, hook in enumerate(as_list(res.get("Properties", {}).get("LifecycleHookSpecificationList"))):
                if self._bad(hook):
                    path = ["Resources", name, "Properties", "LifecycleHookSpecificationList", i, "DefaultResult"]
                    matches.append(RuleMatch(path, "launch hook %s of %s must default to ABANDON" % (hook.get("LifecycleHookName"), name)))
        return matches
