#!/usr/bin/env python3
"""bench/report.py: turn bench/run.sh's runs.tsv into docs/bench/results.md,
the gnuplot data for results.png, and the ratios against the goals
(docs/bench/README.md, "The goals").

Each cell is the median of the repetitions; min-max shows the spread, so a
reader can tell a real gap from noise.

usage: report.py RUNS NA META ISERFS_STATS MEMPOOL_BENCH PROFILE OUTDIR
"""
import statistics
import sys

SYSTEMS = [
    ("rawio", "raw libiscsi (rawio)"),
    ("iscsiperf", "raw libiscsi (iscsi-perf)"),
    ("iserfs", "iserfs"),
    ("qsd", "qemu-storage-daemon FUSE"),
    ("nbdfuse", "nbdfuse + nbdkit memory (no iSCSI)"),
    ("nullfuse", "FUSE floor (null fs, no backend)"),
]
# workload, label, metric (column of runs.tsv), unit, scale
WORKLOADS = [
    ("seqread", "sequential read, 1 MiB, 16 in flight, O_DIRECT", "MBps", "MB/s", 1),
    ("seqwrite", "sequential write, 1 MiB, 16 in flight, O_DIRECT", "MBps", "MB/s", 1),
    ("ddread", "dd bs=1M buffered read, cold cache", "MBps", "MB/s", 1),
    ("ddwrite", "dd bs=1M conv=notrunc,fsync write", "MBps", "MB/s", 1),
    ("randread32", "4 KiB random read, 32 in flight", "IOPS", "k IOPS", 1e-3),
    ("randwrite32", "4 KiB random write, 32 in flight", "IOPS", "k IOPS", 1e-3),
    ("randread1", "4 KiB random read, 1 in flight: median latency", "lat", "µs", 1),
    ("randread1", "4 KiB random read, 1 in flight: rate", "IOPS", "k IOPS", 1e-3),
    ("seqread4m4", "sequential read, 4 MiB, 4 in flight, raw only", "MBps", "MB/s", 1),
]
COLS = {"MBps": 3, "IOPS": 4, "lat": 5, "GiB": 6, "cpu": 7, "target": 8,
        "wait": 9}
# the systems whose target is tgtd (its event thread's wait is measured)
TGTD_SYSTEMS = ["rawio", "iscsiperf", "iserfs", "qsd"]
# the workloads run again with tgtd on a core of its own (run.sh,
# PIN_WORKLOADS); their labels and metrics are those of WORKLOADS
PINNED = ["seqread", "seqwrite", "randread32", "randwrite32"]
# what serves each system's I/O (its "target" CPU column)
TARGETS = {"rawio": "tgtd", "iscsiperf": "tgtd", "iserfs": "tgtd",
           "qsd": "tgtd", "nbdfuse": "nbdkit"}
# bytes per I/O of the workloads counted in I/Os
IO_BYTES = {"randread32": 4096, "randwrite32": 4096, "randread1": 4096}
NOT_RUN = {  # why a cell is empty although its system ran
    "iscsiperf": "— (reads only)",
    "rawio": "— (no page cache)",
}


def load(path):
    runs = {}
    with open(path) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) < 8:
                continue
            runs.setdefault((p[0], p[1]), []).append(p)
    return runs


def med(runs, sys_, wl, metric):
    rows = runs.get((sys_, wl))
    if not rows:
        return None
    return statistics.median(float(r[COLS[metric]]) for r in rows)


def spread(runs, sys_, wl, metric):
    v = [float(r[COLS[metric]]) for r in runs[(sys_, wl)]]
    return min(v), max(v)


def cpu_per_gib(runs, sys_, wl, col="cpu"):
    rows = [r for r in runs.get((sys_, wl), [])
            if len(r) > COLS[col] and float(r[COLS["GiB"]]) > 0]
    if not rows:
        return None
    return statistics.median(
        float(r[COLS[col]]) / float(r[COLS["GiB"]]) for r in rows)


def fmt(x, scale=1):
    x *= scale
    return "%.0f" % x if x >= 100 else "%.1f" % x if x >= 10 else "%.2f" % x


def cell(runs, na, s, wl, metric, scale):
    if s in na:
        return na[s]
    m = med(runs, s, wl, metric)
    if m is None:
        return NOT_RUN.get(s, "—")
    lo, hi = spread(runs, s, wl, metric)
    return "**%s** (%s–%s)" % (fmt(m, scale), fmt(lo, scale), fmt(hi, scale))


def table(runs, na):
    out = ["| workload | " + " | ".join(l for _, l in SYSTEMS) + " |",
           "|---|" + "---|" * len(SYSTEMS)]
    for wl, label, metric, unit, scale in WORKLOADS:
        cells = [cell(runs, na, s, wl, metric, scale) for s, _ in SYSTEMS]
        out.append("| %s (%s) | %s |" % (label, unit, " | ".join(cells)))
    return out


def each_workload():
    """Every workload once (randread1 has two rows in WORKLOADS), with its
    label up to the colon."""
    seen = set()
    for wl, label, _, _, _ in WORKLOADS:
        if wl not in seen:
            seen.add(wl)
            yield wl, label.split(":")[0]


def cpu_table(runs, na, col="cpu"):
    out = ["| workload | " + " | ".join(l for _, l in SYSTEMS) + " |",
           "|---|" + "---|" * len(SYSTEMS)]
    for wl, label in each_workload():
        cells = []
        for s, _ in SYSTEMS:
            c = None if s in na else cpu_per_gib(runs, s, wl, col)
            if col == "target" and s in TARGETS and c is not None:
                cells.append("%.2f (%s)" % (c, TARGETS[s]))
            elif col == "target" and s not in TARGETS and s not in na:
                cells.append("— (no target)")
            else:
                cells.append("n/a" if s in na else "—" if c is None else "%.2f" % c)
        out.append("| %s | %s |" % (label, " | ".join(cells)))
    return out


def waiting(runs, s, wl):
    """Median share of the runs (%) that tgtd's event thread waited for a
    CPU, with min and max; None if not measured."""
    v = [float(r[COLS["wait"]]) for r in runs.get((s, wl), [])
         if len(r) > COLS["wait"] and r[COLS["wait"]] != "-"]
    return (statistics.median(v), min(v), max(v)) if v else None


def wait_cell(w):
    return "—" if w is None else "%.0f%% (%.0f–%.0f)" % w


def wait_table(runs, na):
    out = ["| workload | " + " | ".join(l for s, l in SYSTEMS
                                       if s in TGTD_SYSTEMS) + " |",
           "|---|" + "---|" * len(TGTD_SYSTEMS)]
    for wl, label in each_workload():
        cells = ["n/a" if s in na else wait_cell(waiting(runs, s, wl))
                 for s in TGTD_SYSTEMS]
        out.append("| %s | %s |" % (label, " | ".join(cells)))
    return out


def pinned_table(runs):
    spec = {w[0]: w[1:] for w in WORKLOADS}
    out = ["| workload | raw libiscsi (rawio) | iserfs | iserfs / raw "
           "| tgtd's event thread waiting: rawio | iserfs |",
           "|---|---|---|---|---|---|"]
    for wl in PINNED:
        label, metric, unit, scale = spec[wl]
        raw, me = (med(runs, s, wl, metric)
                   for s in ("rawio-pinned", "iserfs-pinned"))
        if ratio(me, raw) is None:
            continue
        out.append("| %s (%s) | %s | %s | %.2fx | %s | %s |" % (
            label, unit, cell(runs, {}, "rawio-pinned", wl, metric, scale),
            cell(runs, {}, "iserfs-pinned", wl, metric, scale), ratio(me, raw),
            wait_cell(waiting(runs, "rawio-pinned", wl)),
            wait_cell(waiting(runs, "iserfs-pinned", wl))))
    return out


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def goals(runs, na, cores):
    """(text, met) for every goal; met is None when a peer is missing."""
    g = []

    def m(s, wl, metric):
        return None if s in na else med(runs, s, wl, metric)

    def check(desc, r, want):
        if r is None:
            g.append(("%s: not measured" % desc, None))
        else:
            g.append(("%s: %.2fx (goal ≥ %.1fx)" % (desc, r, want), r >= want))

    def pinned(desc, wl, metric, want):
        """Not a goal: the same clients with tgtd on a core of its own,
        and how long tgtd's event thread waited for a CPU in both runs."""
        r = ratio(med(runs, "iserfs-pinned", wl, metric),
                  med(runs, "rawio-pinned", wl, metric))
        if r is None:
            return
        w = [waiting(runs, s, wl) for s in ("rawio", "iserfs")]
        g.append(("not a goal: with tgtd on a core of its own, %s: iserfs / "
                  "raw %.2fx, %s %.1fx (on shared cores tgtd's event thread "
                  "waited for a CPU %s of the time under rawio, %s under "
                  "iserfs)"
                  % (desc, r, "≥" if r >= want else "<", want,
                     *("%.0f%%" % x[0] if x else "?" for x in w)), "floor"))

    def reach(ok):
        return ("within what FUSE alone reaches here" if ok
                else "above the FUSE ceiling here")

    def floor(desc, wl, metric, unit, scale, raw, want):
        """Not a goal: the null file system against the same raw number,
        the most any FUSE design gets on this machine."""
        f, r = m("nullfuse", wl, metric), ratio(m("nullfuse", wl, metric), raw)
        if r is None:
            g.append(("FUSE floor, %s: not measured" % desc, "floor"))
        else:
            g.append(("FUSE floor, %s: %s %s = %.2fx raw, so %.1fx raw is %s"
                      % (desc, fmt(f, scale), unit, r, want, reach(r >= want)),
                      "floor"))

    def bound(desc, wl, metric, unit, scale, raw, want, same):
        """Not a goal: a CPU budget.  A FUSE client of this target that
        costs at least what the FUSE floor costs (the application and the
        kernel's FUSE work, with a daemon that only answers) also needs
        the target's CPU for its commands, and the machine has only so
        many cores for both.  The target's share is the least per GiB that
        tgtd showed in this run for the same commands (SAME: system,
        workload pairs), so the bound errs high.  A goal above it is out
        of reach here for such a client, however it is built."""
        fl = None if "nullfuse" in na else cpu_per_gib(runs, "nullfuse", wl)
        tgs = [t for t in (None if s in na else cpu_per_gib(runs, s, w, "target")
                           for s, w in same) if t is not None]
        if fl is None or not tgs or raw is None or not cores:
            g.append(("CPU bound, %s: not measured" % desc, "floor"))
            return
        tg = min(tgs)
        v = cores / (fl + tg) * 2**30
        v = v / IO_BYTES[wl] if metric == "IOPS" else v / 1e6
        r = v / raw
        g.append(("CPU bound, %s: %d cores / (floor %.2f + tgtd's least %.2f "
                  "CPU s/GiB) = %s %s = %.2fx raw, so %.1fx raw is %s"
                  % (desc, cores, fl, tg, fmt(v, scale), unit, r, want,
                     "within it" if r >= want else
                     "beyond a FUSE client of this target on this machine"),
                  "floor"))

    for wl, metric, what, vs_raw, vs_qsd, unit, scale in [
            ("seqread", "MBps", "O_DIRECT seq read 1 MiB × 16", 0.9, 1.8, "MB/s", 1),
            ("seqwrite", "MBps", "O_DIRECT seq write 1 MiB × 16", 0.9, 1.8, "MB/s", 1),
            ("randread32", "IOPS", "4 KiB random read × 32", 0.9, 1.2, "k IOPS", 1e-3),
            ("randwrite32", "IOPS", "4 KiB random write × 32", 0.9, 1.2, "k IOPS", 1e-3)]:
        me = m("iserfs", wl, metric)
        check(what + ", iserfs / raw", ratio(me, m("rawio", wl, metric)), vs_raw)
        floor(what, wl, metric, unit, scale, m("rawio", wl, metric), vs_raw)
        bound(what, wl, metric, unit, scale, m("rawio", wl, metric), vs_raw,
              [(s, wl) for s in ("rawio", "iscsiperf", "iserfs", "qsd")])
        pinned(what, wl, metric, vs_raw)
        check(what + ", iserfs / qsd", ratio(me, m("qsd", wl, metric)), vs_qsd)
    lat, raw = m("iserfs", "randread1", "lat"), m("rawio", "randread1", "lat")
    if lat is None or raw is None:
        g.append(("4 KiB random read × 1, median latency: not measured", None))
    else:
        g.append(("4 KiB random read × 1, median latency: iserfs %.1f µs, raw "
                  "%.1f µs, raw %s %.1f µs (goal ≤ raw + 20 µs)"
                  % (lat, raw, "+" if lat >= raw else "−", abs (lat - raw)),
                  lat - raw <= 20))
    # A FUSE file system over iSCSI waits for the target and for the FUSE
    # round trip, one after the other: roughly raw + the floor's latency.
    fl = m("nullfuse", "randread1", "lat")
    if fl is None or raw is None:
        g.append(("FUSE floor, 4 KiB random read × 1, median latency: not "
                  "measured", "floor"))
    else:
        g.append(("FUSE floor, 4 KiB random read × 1, median latency: %.1f µs "
                  "vs raw %.1f µs: the FUSE round trip alone takes %.1f µs, so "
                  "raw + 20 µs is %s" % (fl, raw, fl, reach(fl <= 20)), "floor"))
    me = m("iserfs", "ddread", "MBps")
    check("dd read, iserfs / qsd", ratio(me, m("qsd", "ddread", "MBps")), 1.0)
    best = [x for x in (m(s, w, "MBps") for s in ("rawio", "iscsiperf")
                        for w in ("seqread", "seqread4m4")) if x is not None]
    check("dd read, iserfs / raw's best read (%s MB/s)"
          % (fmt(max(best)) if best else "?"),
          ratio(me, max(best) if best else None), 0.9)
    floor("dd read vs raw's best read", "ddread", "MBps", "MB/s", 1,
          max(best) if best else None, 0.9)
    # iserfs's read-ahead for dd sends 1 MiB READs, as seqread does
    bound("dd read vs raw's best read", "ddread", "MBps", "MB/s", 1,
          max(best) if best else None, 0.9,
          [("rawio", "seqread"), ("iscsiperf", "seqread"),
           ("iserfs", "seqread"), ("iserfs", "ddread")])
    check("dd write+fsync, iserfs / qsd",
          ratio(m("iserfs", "ddwrite", "MBps"), m("qsd", "ddwrite", "MBps")), 1.5)
    return g


def cpu_lines(runs, na):
    out = []
    for wl in ("seqread", "seqwrite", "randread32", "randwrite32", "ddread", "ddwrite"):
        me = cpu_per_gib(runs, "iserfs", wl)
        parts = []
        for s in ("rawio", "qsd", "nbdfuse"):
            c = None if s in na else cpu_per_gib(runs, s, wl)
            if me is not None and c:
                parts.append("%.2fx %s" % (me / c, s))
        if me is not None:
            out.append("CPU per GiB, %s: iserfs %.2f s/GiB = %s"
                       % (wl, me, ", ".join(parts) or "no peer"))
    return out


def plot_data(runs, na, path):
    """Every FUSE column relative to raw libiscsi in the same run (1.0 =
    raw); latency is inverted so that higher is better everywhere."""
    def m(s, wl, metric):
        return None if s in na else med(runs, s, wl, metric)
    best = [x for x in (m(s, w, "MBps") for s in ("rawio", "iscsiperf")
                        for w in ("seqread", "seqread4m4")) if x is not None]
    rows = [
        ("seq-read-1M×16", "seqread", "MBps", m("rawio", "seqread", "MBps")),
        ("seq-write-1M×16", "seqwrite", "MBps", m("rawio", "seqwrite", "MBps")),
        ("dd-read (vs best raw read)", "ddread", "MBps", max(best) if best else None),
        ("dd-write+fsync (vs raw seq write)", "ddwrite", "MBps", m("rawio", "seqwrite", "MBps")),
        ("4k-randread×32", "randread32", "IOPS", m("rawio", "randread32", "IOPS")),
        ("4k-randwrite×32", "randwrite32", "IOPS", m("rawio", "randwrite32", "IOPS")),
        ("4k-randread×1", "randread1", "lat", m("rawio", "randread1", "lat")),
    ]
    with open(path, "w") as f:
        f.write("# workload iserfs qsd nbdfuse nullfuse iserfs-pinned\n")
        for label, wl, metric, raw in rows:
            vals = []
            for s in ("iserfs", "qsd", "nbdfuse", "nullfuse"):
                v = m(s, wl, metric)
                if v is None or not raw:
                    vals.append("?")
                elif metric == "lat":
                    vals.append("%.3f" % (raw / v))
                else:
                    vals.append("%.3f" % (v / raw))
            # tgtd on a core of its own: against rawio run the same way
            r = ratio(med(runs, "iserfs-pinned", wl, metric),
                      med(runs, "rawio-pinned", wl, metric))
            vals.append("?" if r is None or metric == "lat" else "%.3f" % r)
            f.write('"%s" %s\n' % (label, " ".join(vals)))


def main():
    runs_p, na_p, meta_p, stats_p, pool_p, prof_p, outdir = sys.argv[1:8]
    runs = load(runs_p)
    na = {}
    with open(na_p) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            if k:
                na[k] = v

    def text(p):
        with open(p) as f:
            return f.read().rstrip()

    cores = None
    with open(meta_p) as f:         # "machine: N cores, ..." (run.sh)
        for line in f:
            if line.startswith("machine: "):
                cores = int(line.split()[1])
                break
    g = goals(runs, na, cores)
    ratio_lines = ["%s %s" % ({True: "MET    ", False: "NOT MET", None: "n/a    ",
                               "floor": "       "}[ok], t)
                   for t, ok in g] + cpu_lines(runs, na)
    md = ["# iserfs benchmark results", "",
          "Produced by `bench/run.sh` (method: [README.md](README.md)). "
          "Cells: median of the repetitions, (min–max) after it. "
          "Only ratios within this one run mean anything.", "",
          "```", text(meta_p), "```", "", "## Throughput and latency", ""]
    md += table(runs, na)
    md += ["", "![iserfs and the FUSE peers relative to raw libiscsi](results.png)",
           "", "## CPU seconds per GiB moved",
           "", "Client (fio/dd/rawio/iscsi-perf, user+sys) plus the export "
           "daemon (all threads, user+sys); the target (tgtd, nbdkit) is not "
           "counted. For 4 KiB workloads a GiB is 262144 I/Os.", ""]
    md += cpu_table(runs, na)
    md += ["", "## The target's CPU seconds per GiB", "",
           "The same runs: CPU seconds (user+sys, all threads) of the process "
           "serving the I/O, over each run, per GiB moved. The target shares "
           "the machine's cores with the client; the \"CPU bound\" lines "
           "below use it.", ""]
    md += cpu_table(runs, na, "target")
    if any(waiting(runs, s, wl) for s in TGTD_SYSTEMS
           for wl, _ in each_workload()):
        md += ["", "## tgtd's event thread waiting for a CPU", "",
               "The same runs: the share of each run (median, min–max) in "
               "which tgtd's main thread, which reads every command and "
               "sends every answer, was ready to run but waited for a CPU "
               "(`/proc/PID/task/PID/schedstat`). tgtd and the client share "
               "the cores: what the client spends, the target may wait for.",
               ""]
        md += wait_table(runs, na)
    pt = pinned_table(runs)
    if len(pt) > 2:
        md += ["", "## With tgtd on a core of its own", "",
               "raw libiscsi and iserfs again in every repetition, after the "
               "runs above, with tgtd (all its threads) on one core and the "
               "client (rawio, or fio and iserfs's threads) on the others "
               "(`taskset`; see README.md, \"The target's core\"). Not one "
               "of the goals, which are measured on shared cores. The "
               "client's CPU is no longer taken from tgtd's, but tgtd has "
               "one core for all its threads, so raw libiscsi may be slower "
               "here than on shared cores: compare both tables.", ""]
        md += pt
    md += ["", "## Against the goals", "", "```"] + ratio_lines + ["```"]
    md += ["", "## iserfs `user.iserfs.stats` after the run", "", "```",
           text(stats_p), "```", "", "## Pool micro-benchmark (tests/mempool_bench)",
           "", "```", text(pool_p), "```"]
    prof = text(prof_p)
    if prof:
        md += ["", "## Where the time goes (4 KiB random read, 32 in flight)",
               "", "```", prof, "```"]
    with open(outdir + "/results.md", "w") as f:
        f.write("\n".join(md) + "\n")
    plot_data(runs, na, outdir + "/results.dat")
    with open(outdir + "/ratios.txt", "w") as f:
        f.write("\n".join(table(runs, na) + [""] + ratio_lines) + "\n")


if __name__ == "__main__":
    main()
