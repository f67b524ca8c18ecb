#!/usr/bin/env python3
"""Where each instruction of a message goes: the callgrind files of the shared instruction harness
(two runs per peer, N1 and N2 messages) read per process and per crate, for doumi beside floor3.

Each figure is (cost in the N2 run - cost in the N1 run) / (N2 - N1): start-up and shutdown cancel
out. Usage: instructions.py DIR N1 N2 (DIR holds out.<peer>.<N>.<pid>, one file per process, in
the order the harness starts them: catalog, bot, gateway).
"""
import collections
import glob
import re
import subprocess
import sys

PROCESSES = ("catalog", "bot", "gateway")
PEERS = ("floor3", "doumi")
LINE = re.compile(r"\s*([\d,]+)\s+\([^)]*\)\s+(.*)$")
CRATE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)::")


def functions(path):
    """Self cost of every function in one callgrind file."""
    out = subprocess.run(
        ["callgrind_annotate", "--threshold=100", "--inclusive=no", path],
        capture_output=True, text=True, check=True,
    ).stdout
    costs = collections.Counter()
    for line in out.splitlines():
        match = LINE.match(line)
        if match and not match.group(2).startswith("PROGRAM TOTALS"):
            costs[match.group(2)] += int(match.group(1).replace(",", ""))
    return costs


def crate(function):
    """The crate a symbol belongs to (`memcpy` and the allocator by name)."""
    name = function.split(":", 1)[1] if ":" in function.split(" ")[0] else function
    name = re.sub(r"^[<&\s]+", "", name.replace("dyn ", "").replace("mut ", ""))
    if "memcpy" in name or "memmove" in name:
        return "memcpy"
    if re.search(r"malloc|free|rjem|je_|rallocx|sdallocx|unlink_chunk", name):
        return "allocator"
    match = CRATE.match(name)
    return match.group(1) if match else name.split(" ")[0][:24]


def files(directory, peer, n):
    found = glob.glob(f"{directory}/out.{peer}.{n}.*")
    found = [f for f in found if f.rsplit(".", 1)[1].isdigit()]
    return sorted(found, key=lambda f: int(f.rsplit(".", 1)[1]))


def per_message(directory, peer, n1, n2):
    """{process: Counter(crate -> instructions per message)}."""
    result = {}
    for process, a, b in zip(PROCESSES, files(directory, peer, n1), files(directory, peer, n2)):
        fa, fb = functions(a), functions(b)
        crates = collections.Counter()
        for function in set(fa) | set(fb):
            crates[crate(function)] += (fb[function] - fa[function]) / (n2 - n1)
        result[process] = crates
    return result


def main():
    directory, n1, n2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    peers = {peer: per_message(directory, peer, n1, n2) for peer in PEERS}
    print("\ninstructions per message, by process")
    print(f"{'process':<10}" + "".join(f"{peer:>12}" for peer in PEERS))
    for process in PROCESSES:
        row = "".join(f"{sum(peers[p].get(process, {}).values()):>12,.0f}" for p in PEERS)
        print(f"{process:<10}{row}")
    totals = {p: collections.Counter() for p in PEERS}
    for p in PEERS:
        for crates in peers[p].values():
            totals[p].update(crates)
    print("\ninstructions per message, by crate (the three processes summed)")
    print(f"{'crate':<18}" + "".join(f"{peer:>12}" for peer in PEERS) + f"{'doumi - floor3':>16}")
    shown = sorted(set(totals["doumi"]) | set(totals["floor3"]), key=lambda c: -max(totals["doumi"][c], totals["floor3"][c]))
    for name in shown[:24]:
        d, f = totals["doumi"][name], totals["floor3"][name]
        print(f"{name:<18}{f:>12,.0f}{d:>12,.0f}{d - f:>+16,.0f}")


if __name__ == "__main__":
    main()
