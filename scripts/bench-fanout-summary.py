#!/usr/bin/env python3
"""Medians of scripts/bench-fanout.sh runs, from its TSV (`--results FILE`): one block per
(N, fan-out), or with --markdown one README table of every block.

    scripts/bench-fanout-summary.py RUNS.tsv [--n N] [--fanout F] [--cores C] [--crypto-ms MS] [--markdown]

Per tool, the median over its runs of: wall time; sshd's CPU per connection; the client's
user+sys CPU per host (its reaped children included: pdsh's and xargs' ssh processes), and its
user and sys parts; peak
RSS (rusage: for pdsh and xargs-ssh that of the largest ONE process); the CPU floor of the
one-sshd rig, (sshd CPU + client CPU) / cores, and wall / floor; the rig's CPU share
(sshd + client) / (wall x cores), saturated from 90 %; the machine's busy share (/proc/stat),
where other work on the machine shows. The floor of the client's CPU per host is one
connection's cryptography (x25519, one Ed25519 signature and one verification, SHA-256 of the
transcript): --crypto-ms, as examples/crypto_floor.rs measured it on the machine.
"""
import argparse
import csv
import os
import statistics



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tsv")
    ap.add_argument("--n", type=int)
    ap.add_argument("--fanout", type=int)
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    ap.add_argument("--crypto-ms", type=float, default=float("nan"))
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.tsv), delimiter="\t"))
    rows = [r for r in rows if (a.n is None or int(r["n"]) == a.n) and (a.fanout is None or int(r["fanout"]) == a.fanout)]
    blocks = list(dict.fromkeys((int(r["n"]), int(r["fanout"])) for r in rows))
    if a.markdown:
        print(f"| N | fan-out | tool | wall s | floor s (wall ÷ floor) | vs fleetboot | sshd CPU ms/conn "
              f"| client CPU ms/host: user + sys (crypto floor {a.crypto_ms:.2f}) | peak RSS MB | rig CPU | machine busy | runs |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n, f in blocks:
        block = [r for r in rows if (int(r["n"]), int(r["fanout"])) == (n, f)]
        stats = summarize(block, n, a.cores)
        if a.markdown:
            for s in stats:
                bold = "**" if s["tool"] == "fleetboot" else ""
                print(f"| {n} | {f} | {s['tool']} | {bold}{s['wall']:.2f}{bold} | {s['floor']:.2f} ({s['wall'] / s['floor']:.2f}×) "
                      f"| {s['vs']} | {s['sshd_ms']:.1f} | {s['client_ms']:.2f}: {s['user_ms']:.2f} + {s['sys_ms']:.2f} | {s['rss']:.0f}{s['rss_note']} "
                      f"| {s['rig'] * 100:.0f} % | {s['machine'] * 100:.0f} % | {s['runs']} |")
        else:
            print_block(stats, n, f, a.cores, a.crypto_ms)


def summarize(block, n, cores):
    tools = list(dict.fromkeys(r["tool"] for r in block))

    def med(tool, key):
        vals = [float(r[key]) for r in block if r["tool"] == tool and r[key] not in ("", "nan")]
        return statistics.median(vals) if vals else float("nan")

    fb = med("fleetboot", "wall_s")
    out = []
    for t in tools:
        wall, client, sshd = med(t, "wall_s"), med(t, "client_cpu_s"), med(t, "sshd_cpu_s")
        floor = (client + sshd) / cores
        out.append(dict(
            tool=t, runs=sum(r["tool"] == t for r in block), answered=min(int(r["answered"]) for r in block if r["tool"] == t),
            wall=wall, vs=f"{wall / fb:.2f}×" if fb == fb and fb > 0 else "-", sshd_ms=sshd / n * 1000,
            client_ms=client / n * 1000, user_ms=med(t, "client_user_s") / n * 1000, sys_ms=med(t, "client_sys_s") / n * 1000, rss=med(t, "rss_kb") / 1024,
            rss_note=" (one process)" if t in ("xargs-ssh", "pdsh") else "", floor=floor,
            sshd_floor=sshd / cores, rig=(client + sshd) / (wall * cores) if wall > 0 else float("nan"),
            machine=med(t, "machine_busy")))
    return out


def print_block(stats, n, f, cores, crypto_ms):
    runs = max((s["runs"] for s in stats), default=0)
    print(f"\nN={n} fan-out {f}: medians of {runs} runs (floor = (sshd CPU + client CPU) / {cores} cores; "
          f"client's floor: crypto per connection {crypto_ms:.3f} ms)")
    print(f"{'tool':<10} {'answered':>9} {'wall s':>7} {'vs fb':>6} {'floor s':>8} {'wall/floor':>10} {'sshd/cores s':>12}"
          f" {'sshd ms/conn':>12} {'client ms/host':>14} {'user+sys':>11} {'peak RSS MB':>11} {'rig CPU':>7} {'machine':>7}  saturated")
    for s in stats:
        sat = "yes (rig)" if s["rig"] >= 0.9 else ("yes (other work)" if s["machine"] >= 0.9 else "no")
        ratio = s["wall"] / s["floor"] if s["floor"] else float("nan")
        print(f"{s['tool']:<10} {s['answered']:>5}/{n:<3} {s['wall']:>7.2f} {s['vs']:>6} {s['floor']:>8.2f} {ratio:>10.2f}"
              f" {s['sshd_floor']:>12.2f} {s['sshd_ms']:>12.1f} {s['client_ms']:>14.2f} {s['user_ms']:>5.2f}+{s['sys_ms']:<5.2f} {s['rss']:>11.1f}"
              f" {s['rig'] * 100:>6.0f}% {s['machine'] * 100:>6.0f}%  {sat}{s['rss_note'] and ' (RSS: largest one process)'}")
    print()


if __name__ == "__main__":
    main()
