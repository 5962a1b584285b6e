"""The peer of `entente bench psi`: OpenMined PSI (openmined-psi on PyPI), its full protocol
with its protobuf messages serialised and parsed, as an outside user would run it.

Server (the holder) and client (the asker) run in this one process, one after the other, so
the CPU time of each phase is its own. Both reveal the intersection (reveal_intersection=True)
and the server's setup uses the RAW data structure (exact, no false positives), as Entente's
labelled mode is exact. The items are the benchmark's: IPv4 addresses as `ip:A.B.C.D`.

Prints one JSON object on standard output.
"""

import argparse
import json
import time

import private_set_intersection.python as psi


def ip(base, i):
    v = base | i
    return "ip:%d.%d.%d.%d" % (v >> 24 & 255, v >> 16 & 255, v >> 8 & 255, v & 255)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--holder", type=int, required=True)
    p.add_argument("--asker", type=int, required=True)
    a = p.parse_args()
    overlap = min(a.asker // 2, a.holder)
    server_items = [ip(0x0A000000, i) for i in range(a.holder)]
    client_items = [ip(0x0A000000, a.holder - overlap + i) for i in range(overlap)]
    client_items += [ip(0x0B000000, i) for i in range(a.asker - overlap)]

    phases = {}

    def timed(name, f):
        c0, w0 = time.process_time(), time.perf_counter()
        out = f()
        phases[name] = {"cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0}
        return out

    server = psi.server.CreateWithNewKey(True)
    client = psi.client.CreateWithNewKey(True)
    setup_bytes = timed(
        "holder_setup",
        lambda: server.CreateSetupMessage(
            1e-9, len(client_items), server_items, psi.DataStructure.RAW
        ).SerializeToString(),
    )
    request_bytes = timed(
        "asker_request", lambda: client.CreateRequest(client_items).SerializeToString()
    )

    def process():
        request = psi.Request()
        request.ParseFromString(request_bytes)
        return server.ProcessRequest(request).SerializeToString()

    response_bytes = timed("holder_process", process)

    def intersect():
        setup = psi.ServerSetup()
        setup.ParseFromString(setup_bytes)
        response = psi.Response()
        response.ParseFromString(response_bytes)
        return client.GetIntersection(setup, response)

    found = timed("asker_intersect", intersect)
    print(
        json.dumps(
            {
                "peer": "openmined-psi",
                "holder": a.holder,
                "asker": a.asker,
                "intersection": len(found),
                "expected": overlap,
                "phases": phases,
                "bytes": {
                    "holder_to_asker": len(setup_bytes) + len(response_bytes),
                    "asker_to_holder": len(request_bytes),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
