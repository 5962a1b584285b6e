"""Drives an Entente node's TAXII 2.1 server with the OASIS taxii2-client, parses what it
serves with the OASIS stix2 library and checks the exported bundle with stix2-validator.

Usage: taxii_client.py BASE_URL USER TOKEN COLLECTION_ID OUT_BUNDLE
Over HTTPS (TAXII 2.1 section 1.6.1), ENTENTE_CA names the PEM certificate to trust.
Prints one line per check; exits non-zero on the first failure.
"""
import json
import os
import sys

import requests
import stix2
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

base, user, token, coll_id, out = sys.argv[1:6]
verify = os.environ.get("ENTENTE_CA", True)
if verify is not True:
    # requests prefers REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment over a
    # session's `verify`: point them at the node's certificate too.
    os.environ["REQUESTS_CA_BUNDLE"] = os.environ["CURL_CA_BUNDLE"] = verify


class Bearer(requests.auth.AuthBase):
    def __call__(self, r):
        r.headers["Authorization"] = "Bearer " + token
        return r


def check(cond, what):
    if not cond:
        print("FAIL", what)
        sys.exit(1)
    print("ok", what)


# Discovery and API root, with the token as a bearer token.
server = Server(base + "/taxii2/", auth=Bearer(), verify=verify)
check(base.startswith("https://") == (verify is not True), "scheme as the test asked")
check(server.title.startswith("Entente node"), "discovery title")
root = server.api_roots[0]
check("application/taxii+json;version=2.1" in root.versions, "api root versions")
# Basic authentication with the user name and the token also works.
root_basic = ApiRoot(root.url, user=user, password=token, verify=verify)
check(root_basic.max_content_length > 0, "api root over Basic auth")
colls = {c.id: c for c in root.collections}
check(coll_id in colls, "collection listed")
coll = colls[coll_id]
check(coll.can_read and coll.can_write, "can read and write")

# Add objects: 250 indicators in one envelope, then the status resource.
indicators = []
for i in range(250):
    indicators.append(
        stix2.Indicator(
            id="indicator--00000000-0000-4000-8000-%012d" % i,
            created="2026-11-01T00:00:00.000Z",
            modified="2026-11-01T00:00:00.000Z",
            name="LANTERN C2 %d" % i,
            description="Command and control address",
            pattern="[ipv4-addr:value = '198.51.%d.%d']" % (i // 250, i % 250),
            pattern_type="stix",
            valid_from="2026-11-01T00:00:00Z",
            object_marking_refs=["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"],
        )
    )
envelope = {"objects": [json.loads(i.serialize()) for i in indicators]}
status = coll.add_objects(json.dumps(envelope))
check(status.status == "complete", "add_objects status complete")
check(status.success_count == 250 and status.failure_count == 0, "250 successes")
again = root.get_status(status.id)
check(again.total_count == 250, "status resource by id")
# The same objects again: successes (already held), not failures.
status2 = coll.add_objects(json.dumps(envelope))
check(status2.success_count == 250 and status2.failure_count == 0, "resubmission counts as success")

# Paging through everything with limit 40 and `next`.
seen = []
for env in as_pages(coll.get_objects, per_request=40):
    for o in env.get("objects", []):
        seen.append(o["id"])
check(len(seen) == len(set(seen)), "no object served twice")
check(len([s for s in seen if s.startswith("indicator--00000000")]) == 250, "all 250 paged through")

# Filters, one object, versions, manifest.
env = coll.get_objects(type="indicator", limit=5)
check(len(env["objects"]) == 5 and env["more"] is True and "next" in env, "match[type] with limit")
one = coll.get_object(indicators[7].id)
check(one["objects"][0]["id"] == indicators[7].id, "object by id")
vers = coll.object_versions(indicators[7].id)
check(vers["versions"] == ["2026-11-01T00:00:00.000Z"], "versions")
man = coll.get_manifest(limit=3)
check(len(man["objects"]) == 3 and man["objects"][0]["media_type"].startswith("application/stix+json"), "manifest")

# The stix2 library parses every object we serve.
everything = []
for env in as_pages(coll.get_objects, per_request=100):
    everything.extend(env.get("objects", []))
for o in everything:
    stix2.parse(o, allow_custom=True)
check(True, "stix2.parse of %d served objects" % len(everything))
with open(out, "w") as f:
    json.dump({"type": "bundle", "id": "bundle--6f2c6a34-2a4e-4e55-8c39-0d8f2e1a9b10", "objects": everything}, f)
print("done")
