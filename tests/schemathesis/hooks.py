"""Schemathesis hooks for the API fuzz test (tests/api_fuzz.rs).

The stock feed takes NDJSON, which schemathesis has no serializer for; the generated
body is a string, sent as it is, like text/plain.

Before each request, in every phase:
- Random SKU ids name SKUs that do not exist, so most generated holds and SKU calls would
  end in a 404 before they reach the stock logic. Half of the *valid* ids (by length) are
  turned into the SKU the test stocks before the run, so quantities, TTLs, quotas and
  adjustments are checked against a real SKU too.
- The same idempotency key comes back with other bodies, which the server rightly refuses
  with 422 before it looks further; that would hide a body the server wrongly accepts.
  Each valid key gets a unique suffix (still a valid key).
Invalid ids and keys are left alone: they are the negative cases, and must be refused.
A case about a header (a missing or malformed one) is not touched at all: an edit makes
schemathesis judge the case again, and it would then send the headers it had left out.
"""
import itertools
import re

import schemathesis

schemathesis.serializer.alias("application/x-ndjson", "text/plain")

KNOWN_SKU = "TSHIRT"
ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
ATTEMPTS = itertools.count()


def known(value):
    if isinstance(value, str) and ID.fullmatch(value) and len(value) % 2 == 1:
        return KNOWN_SKU
    return value


def targets_a_header(case):
    data = getattr(getattr(case.meta, "phase", None), "data", None)
    location = getattr(data, "parameter_location", None)
    return location is not None and str(getattr(location, "value", location)) == "header"


@schemathesis.hook
def before_call(context, case, kwargs):
    if targets_a_header(case):
        return
    path_parameters = case.path_parameters
    if path_parameters is not None and "sku" in path_parameters:
        path_parameters["sku"] = known(path_parameters["sku"])
    if case.operation.path != "/v1/holds":
        return
    if isinstance(case.body, dict) and isinstance(case.body.get("lines"), list):
        for line in case.body["lines"]:
            if isinstance(line, dict) and "sku" in line:
                line["sku"] = known(line["sku"])
    # `case.headers` is a mapping, not always a dict.
    key = case.headers.get("Idempotency-Key") if case.headers is not None else None
    if isinstance(key, str) and ID.fullmatch(key):
        case.headers["Idempotency-Key"] = f"{key[:48]}-{next(ATTEMPTS)}"
