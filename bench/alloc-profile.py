#!/usr/bin/env python3
"""Where the gateway's allocations per call come from, by the part of the stack that asks for them.

    bench/alloc-profile.py [--calls 2000] [--top 25]
    bench/alloc-profile.py --peak DHAT_JSON --calls 10000 [--top 25]

Builds the `allocs` example (release), runs it under `valgrind --tool=dhat`, and attributes every allocation site
that fires on (almost) every call to a part of the stack: the upstream HTTP client (reqwest, hyper-util, hyper's
HTTP/1.1 client), the gRPC server (tonic, its generated code, h2, hyper's HTTP/2 server), logging
(tracing-subscriber), decoding the upstream body (serde_json into the session's owned strings), tokio, or the
gateway's own code (the first frame that is not a container or the allocator is the gateway's). Stacks that belong to
the example's own tonic client or its upstream stand-in are left out, so the total is the gateway's own and
should match the example's counting allocator within an allocation or two. Prints one table per crate and the
busiest sites. Needs valgrind (on every machine here) and nothing else.

With --peak, it reads a heap profile of the gateway itself (`scripts/memory-10k.sh --dhat FILE`) and attributes
the bytes live at the heap's peak instead, divided by --calls (the calls held in flight then).
"""
import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARM_UP = 1000  # the allocs example's warm-up calls, counted by dhat too

# Frames that only carry memory for someone else: the owner is further up the stack.
CARRIERS = re.compile(
    r"^(alloc::|core::|std::|__rust|<alloc::|<core::|<std::|malloc|calloc|realloc|memalign|posix_memalign|"
    r"hashbrown::|bytes::|<bytes::|http::header::|<http::header::|http::extensions::|"
    r"<[A-Za-z_]+ as core::|<[A-Za-z_]+<[^>]*> as core::|<\[|<&|<Vec|<String|<Box|RawVec|"
    r"<alloc::vec|<T as alloc|slab::|indexmap::|<serde_json::value)"
)
# Stacks of the example's own client and upstream stand-in (they run on an uncounted runtime).
NOT_GATEWAY = re.compile(
    r"allocs::measure|allocs::upstream|tonic::transport::channel|MakeSendRequestService|"
    r"tonic::client::|hyper::proto::h2::client|h2::client::"
)


def frame_name(raw):
    name = re.sub(r"^0x[0-9A-Fa-f]+: ", "", raw)
    name = re.sub(r" \(in [^)]*\)$", "", name)
    name = re.sub(r" \([^()]*:\d+\)$", "", name)
    return re.sub(r"::h[0-9a-f]{16}$", "", name)


def owner_of(frames):
    """The first frame that asked for the memory (not a container or the allocator)."""
    for frame in frames:
        if not CARRIERS.search(frame):
            return frame
    return frames[0] if frames else "?"


# (part, pattern on the whole stack), first match wins; the gateway's own code is decided by the owner frame.
PARTS = [
    ("upstream HTTP client (reqwest, hyper-util, hyper h1)", re.compile(r"reqwest::|hyper_util::client|hyper::client|hyper::proto::h1")),
    ("logging (tracing-subscriber)", re.compile(r"tracing_subscriber::")),
    ("decoding the upstream body (serde_json)", re.compile(r"upstream::model|serde_json::de")),
]
SERVER = re.compile(r"tonic::|h2::|hyper::proto::h2|hyper::server|proto::generated|tokio::")
OWN = re.compile(r"^<?kgen_gateway::(?!proto::generated)")


def part_of(frames, owner):
    stack = "\n".join(frames)
    for part, pattern in PARTS:
        if pattern.search(stack):
            return part
    if OWN.search(owner):
        return "the gateway's own code"
    if SERVER.search(owner):
        return "gRPC server (tonic + generated code, h2, hyper h2, tokio)"
    return "other: " + owner[:60]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--dhat-json", help="analyse this dhat output instead of running valgrind")
    parser.add_argument("--peak", metavar="DHAT_JSON",
                        help="bytes live at the heap's peak, from the gateway's own dhat profile")
    args = parser.parse_args()
    if args.peak:
        return peak(args)
    calls = args.calls + WARM_UP

    if args.dhat_json:
        path = args.dhat_json
    else:
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet", "--example", "allocs"],
                       cwd=ROOT, check=True)
        path = os.path.join(tempfile.mkdtemp(prefix="alloc-profile."), "dhat.json")
        subprocess.run(["valgrind", "--tool=dhat", f"--dhat-out-file={path}",
                        os.path.join(target, "release", "examples", "allocs"),
                        "--calls", str(args.calls), "--padding", "0"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    with open(path) as f:
        dhat = json.load(f)
    names = [frame_name(f) for f in dhat["ftbl"]]
    by_crate = collections.Counter()
    sites = []
    for pp in dhat["pps"]:
        if pp["tbk"] < 0.2 * calls:
            continue  # start-up and occasional allocations
        frames = [names[i] for i in pp["fs"]]
        if any(NOT_GATEWAY.search(f) for f in frames):
            continue
        per_call = pp["tbk"] / calls
        owner = owner_of(frames)
        part = part_of(frames, owner)
        by_crate[part] += per_call
        sites.append((per_call, pp["tb"] / calls, part, owner))

    total = sum(by_crate.values())
    print(f"allocations per call on the gateway's side: {total:.1f} "
          f"({args.calls} calls + {WARM_UP} warm-up under dhat; sites firing on >= 20% of calls)")
    print(f"{'part of the stack':<60}{'per call':>9}")
    for part, n in by_crate.most_common():
        print(f"{part:<60}{n:>9.1f}")
    print(f"\nbusiest {args.top} sites (allocations per call, bytes per call, owner):")
    for per_call, size, crate, frame in sorted(sites, reverse=True)[: args.top]:
        print(f"{per_call:5.1f} {size:7.0f} B  {frame[:130]}")


def peak(args):
    with open(args.peak) as f:
        dhat = json.load(f)
    names = [frame_name(f) for f in dhat["ftbl"]]
    by_part = collections.Counter()
    sites = []
    for pp in dhat["pps"]:
        live = pp.get("gb", 0)
        if live == 0:
            continue
        frames = [names[i] for i in pp["fs"]]
        owner = owner_of(frames)
        part = part_of(frames, owner)
        by_part[part] += live
        sites.append((live, pp.get("gbk", 0), part, owner))
    total = sum(by_part.values())
    print(f"heap live at the peak: {total / 2**20:.1f} MiB = {total / args.calls:,.0f} B per call in flight "
          f"({args.calls} calls)")
    print(f"{'part of the stack':<60}{'B per call':>11}")
    for part, live in by_part.most_common(12):
        print(f"{part:<60}{live / args.calls:>11,.0f}")
    print(f"\nlargest {args.top} sites at the peak (bytes per call, blocks, owner):")
    for live, blocks, part, owner in sorted(sites, reverse=True)[: args.top]:
        print(f"{live / args.calls:7,.0f} B {blocks:7d}  {owner[:130]}")


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the output quietly
    sys.exit(main())
