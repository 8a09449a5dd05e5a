"""schemathesis hooks of the contract check (run.sh sets SCHEMATHESIS_HOOKS to this module).

Only for rules relative to the moment of the request, which no schema can state: a new API
key's `expires_at` must be in the future (422 otherwise, as documented). A generated time that
has already passed is moved a year ahead of now; every other generated value is sent as is.
`map_case` rather than `map_body`: every phase, the coverage phase included, applies it.
"""

import datetime

import schemathesis


@schemathesis.hook
def map_case(context, case):
    operation = case.operation
    body = case.body
    if (
        operation.method.upper() != "POST"
        or operation.path != "/api/v1/auth/api-keys"
        or not isinstance(body, dict)
        or not isinstance(body.get("expires_at"), str)
    ):
        return case
    try:
        at = datetime.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    except ValueError:
        return case
    now = datetime.datetime.now(datetime.timezone.utc)
    if at.tzinfo is None or at > now:
        return case
    case.body = {**body, "expires_at": (now + datetime.timedelta(days=365)).isoformat()}
    return case
