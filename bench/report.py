#!/usr/bin/env python3
"""bench/report.py: turn bench/run.sh's raw data into docs/bench/results.md,
the gnuplot data for results.png, and the ratios against the goals
(docs/bench/README.md, "The goals").

Each cell is the median of the repetitions; min-max shows the spread, so a
reader can tell a real gap from noise.

usage: report.py OUTDIR MEMPOOL_BENCH RUNDIR [RUNDIR]
       report.py RUNS NA META ISERFS_STATS MEMPOOL_BENCH PROFILE OUTDIR

The first form is bench/run.sh's: one RUNDIR per run, the machine as a user
finds it first, then (TUNED=1) the tuned one, each holding runs.tsv, na.txt,
meta.txt, iserfs-stats.txt, profile.txt, libiscsi.txt, tunings.txt and mode
(see bench/run.sh, run_phase).  The second reads the files of one run as
bench/run.sh wrote them before it measured both kinds of run.
"""
import os
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
# what a column that runs no libiscsi has instead
NO_LIBISCSI = {"nbdfuse": "no libiscsi", "nullfuse": "no libiscsi"}
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


def cpu_per_io(runs, s, wl):
    """Median µs of CPU (client + export daemon) per I/O, counted as CPU
    per GiB is; None for a workload not counted in I/Os."""
    c = cpu_per_gib(runs, s, wl)
    if c is None or wl not in IO_BYTES:
        return None
    return c * IO_BYTES[wl] / 2**30 * 1e6


def cell(runs, na, s, wl, metric, scale):
    if s in na:
        return na[s]
    m = med(runs, s, wl, metric)
    if m is None:
        return NOT_RUN.get(s, "—")
    lo, hi = spread(runs, s, wl, metric)
    c = "**%s** (%s–%s)" % (fmt(m, scale), fmt(lo, scale), fmt(hi, scale))
    cpu = cpu_per_io(runs, s, wl) if metric == "lat" else None
    if cpu is not None:
        c += "<br>CPU %s µs/I/O" % fmt(cpu)
    return c


def header(libiscsi):
    """The tables' first line: each column's name and the libiscsi its
    process loaded."""
    cols = []
    for s, l in SYSTEMS:
        lib = libiscsi.get(s, ("libiscsi not recorded", ""))[0] \
            if s not in NO_LIBISCSI else NO_LIBISCSI[s]
        cols.append("%s<br>%s" % (l, lib))
    return ["| workload | " + " | ".join(cols) + " |",
            "|---|" + "---|" * len(SYSTEMS)]


def table(runs, na, libiscsi):
    out = header(libiscsi)
    for wl, label, metric, unit, scale in WORKLOADS:
        cells = [cell(runs, na, s, wl, metric, scale) for s, _ in SYSTEMS]
        if metric == "lat":
            unit += "; CPU per I/O: client + export daemon"
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


def cpu_table(runs, na, libiscsi, col="cpu"):
    out = header(libiscsi)
    for wl, label in each_workload():
        cells = []
        for s, _ in SYSTEMS:
            c = None if s in na else cpu_per_gib(runs, s, wl, col)
            if col == "target" and s in TARGETS and c is not None:
                cells.append("%.2f (%s)" % (c, TARGETS[s]))
            elif col == "target" and s not in TARGETS and s not in na:
                cells.append("— (no target)")
            elif c is not None and wl in IO_BYTES:
                cells.append("%.2f (%s µs/I/O)"
                             % (c, fmt(c * IO_BYTES[wl] / 2**30 * 1e6)))
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


def wait_table(runs, na, libiscsi):
    out = ["| workload | " + " | ".join(
        "%s<br>%s" % (l, libiscsi.get(s, ("libiscsi not recorded", ""))[0])
        for s, l in SYSTEMS if s in TGTD_SYSTEMS) + " |",
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


def goals(runs, na, cores, poll_us=None):
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
    def cpu_io(s):
        c = None if s in na else cpu_per_io(runs, s, "randread1")
        return "?" if c is None else fmt(c)

    lat, raw = m("iserfs", "randread1", "lat"), m("rawio", "randread1", "lat")
    if lat is None or raw is None:
        g.append(("4 KiB random read × 1, median latency: not measured", None))
    else:
        g.append(("4 KiB random read × 1, median latency: iserfs %.1f µs "
                  "(CPU %s µs per I/O), raw %.1f µs (CPU %s µs per I/O), raw "
                  "%s %.1f µs (goal ≤ raw + 20 µs)%s"
                  % (lat, cpu_io("iserfs"), raw, cpu_io("rawio"),
                     "+" if lat >= raw else "−", abs(lat - raw),
                     "; iserfs polls for up to poll_us=%s µs before it "
                     "sleeps, raw libiscsi sleeps in poll() at once"
                     % poll_us if poll_us else ""),
                  lat - raw <= 20))
    # A FUSE file system over iSCSI waits for the target and for the FUSE
    # round trip, one after the other: roughly raw + the floor's latency.
    fl = m("nullfuse", "randread1", "lat")
    if fl is None or raw is None:
        g.append(("FUSE floor, 4 KiB random read × 1, median latency: not "
                  "measured", "floor"))
    else:
        g.append(("FUSE floor, 4 KiB random read × 1, median latency: %.1f µs "
                  "(CPU %s µs per I/O) vs raw %.1f µs: the FUSE round trip "
                  "alone takes %.1f µs, so raw + 20 µs is %s"
                  % (fl, cpu_io("nullfuse"), raw, fl, reach(fl <= 20)),
                  "floor"))
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


def plot_data(runs, na, path, libiscsi):
    """Every FUSE column relative to raw libiscsi in the same run (1.0 =
    raw); latency is inverted so that higher is better everywhere.  The
    first line holds the bars' titles (gnuplot's columnheader), each with
    the libiscsi its process loaded."""
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
        def lib(s):
            return libiscsi.get(s, ("libiscsi not recorded", ""))[0]
        raw = lib("rawio")
        f.write('"workload" "%s" "%s" "%s" "%s" "%s"\n' % (
            "iserfs, %s (raw: %s)" % (lib("iserfs"), raw),
            "qemu-storage-daemon, " + lib("qsd"),
            "nbdfuse (nbdkit memory, no iSCSI)",
            "FUSE floor (null fs, no backend)",
            "iserfs, tgtd on a core of its own (vs raw, likewise)"))
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


class Run:
    """One run of bench/run.sh: the machine as found, or tuned."""

    def __init__(self, runs, na, meta, stats, profile, libiscsi=None,
                 tunings=None, mode=None):
        self.runs, self.na, self.meta = load(runs), {}, text(meta)
        self.stats, self.profile = text(stats), text(profile)
        self.mode, self.tunings, self.libiscsi = mode, tunings or [], {}
        for line in lines(na):
            k, _, v = line.partition("\t")
            if k:
                self.na[k] = v
        self.from_maps = libiscsi is not None
        if libiscsi is not None:
            for line in lines(libiscsi):
                p = line.split("\t")
                if len(p) == 3:
                    self.libiscsi[p[0]] = (p[1], p[2])
        else:
            # written before the columns were read from /proc/PID/maps:
            # "libiscsi loaded: iserfs PATH, rawio PATH", from ldd
            for line in self.meta.splitlines():
                if line.startswith("libiscsi loaded: "):
                    for part in line[len("libiscsi loaded: "):].split(", "):
                        k, _, path = part.partition(" ")
                        self.libiscsi[k] = ("%s (ldd)" % path, path)
        for s_ in ("rawio", "iserfs"):
            if s_ in self.libiscsi:
                self.libiscsi[s_ + "-pinned"] = self.libiscsi[s_]
        self.cores = self.poll_us = None
        for line in self.meta.splitlines():
            if line.startswith("machine: "):     # "machine: N cores, ..."
                self.cores = int(line.split()[1])
            elif line.startswith("iserfs poll_us: "):
                self.poll_us = line.split()[2]

    @classmethod
    def from_dir(cls, d):
        def f(name):
            return os.path.join(d, name)
        mode = text(f("mode")) if os.path.exists(f("mode")) else None
        tunings = [tuple(line.split("\t", 1)) for line in lines(f("tunings.txt"))
                   if "\t" in line] if os.path.exists(f("tunings.txt")) else None
        return cls(f("runs.tsv"), f("na.txt"), f("meta.txt"),
                   f("iserfs-stats.txt"), f("profile.txt"),
                   f("libiscsi.txt") if os.path.exists(f("libiscsi.txt")) else None,
                   tunings, mode)

    def title(self):
        return {"default": "At the defaults a user gets",
                "tuned": "Tuned"}.get(self.mode, "Results")

    def intro(self):
        if self.mode == "default":
            return ["The machine as a user finds it: tgtd started plainly, "
                    "the fuse module's `enable_uring`, the VM's free page "
                    "reporting and `fs.pipe-max-size` left as they were "
                    "(the lines below say how they were)."
                    + (" Settings the environment asked for in this run "
                       "too:" if self.tunings else ""), ""]
        if self.mode == "tuned":
            return ["The same measurements in a second run, after the one "
                    "above, with the target and every export started "
                    "afresh and these tunings applied (bench/lib.sh; each "
                    "put back afterwards):", ""]
        return []

    def goals(self):
        g = goals(self.runs, self.na, self.cores, self.poll_us)
        return ["%s %s" % ({True: "MET    ", False: "NOT MET", None: "n/a    ",
                            "floor": "       "}[ok], t)
                for t, ok in g] + cpu_lines(self.runs, self.na)


def text(p):
    with open(p) as f:
        return f.read().rstrip()


def lines(p):
    with open(p) as f:
        return [line.rstrip("\n") for line in f]


def run_md(r, first, level="##"):
    """The Markdown of one run; FIRST: the plot is of this run."""
    sub = level + "#"
    runs, na, lib = r.runs, r.na, r.libiscsi
    md = [level + " " + r.title(), ""] + r.intro()
    if r.tunings:
        md += ["- **%s**: %s" % t for t in r.tunings] + [""]
    md += ["```", r.meta, "```", "", sub + " Throughput and latency", "",
           "Each column says, under its name, which libiscsi its process "
           + ("had mapped (`/proc/PID/maps`)." if r.from_maps else
              "loaded, as ldd resolved it, where the run recorded it.")
           + " Beside each latency: the µs of "
           "CPU per I/O of the client and the export daemon, counted as "
           "the CPU per GiB below.", ""]
    md += table(runs, na, lib)
    if r.poll_us:
        md += ["", "At one request in flight iserfs's session thread polls "
               "for up to poll_us (%s µs) before it sleeps, where raw "
               "libiscsi (rawio, iscsi-perf) sleeps in poll() at once: part "
               "of its latency is bought with CPU, as the CPU per I/O beside "
               "it shows." % r.poll_us]
    if first:
        md += ["", "![iserfs and the FUSE peers relative to raw libiscsi]"
               "(results.png)"]
    md += ["", sub + " CPU seconds per GiB moved",
           "", "Client (fio/dd/rawio/iscsi-perf, user+sys) plus the export "
           "daemon (all threads, user+sys); the target (tgtd, nbdkit) is not "
           "counted. For 4 KiB workloads a GiB is 262144 I/Os, and the µs "
           "of CPU per I/O follow in brackets.", ""]
    md += cpu_table(runs, na, lib)
    md += ["", sub + " The target's CPU seconds per GiB", "",
           "The same runs: CPU seconds (user+sys, all threads) of the process "
           "serving the I/O, over each run, per GiB moved. The target shares "
           "the machine's cores with the client; the \"CPU bound\" lines "
           "below use it.", ""]
    md += cpu_table(runs, na, lib, "target")
    if any(waiting(runs, s, wl) for s in TGTD_SYSTEMS
           for wl, _ in each_workload()):
        md += ["", sub + " tgtd's event thread waiting for a CPU", "",
               "The same runs: the share of each run (median, min–max) in "
               "which tgtd's main thread, which reads every command and "
               "sends every answer, was ready to run but waited for a CPU "
               "(`/proc/PID/task/PID/schedstat`). tgtd and the client share "
               "the cores: what the client spends, the target may wait for.",
               ""]
        md += wait_table(runs, na, lib)
    pt = pinned_table(runs)
    if len(pt) > 2:
        md += ["", sub + " With tgtd on a core of its own", "",
               "raw libiscsi and iserfs again in every repetition, after the "
               "runs above, with tgtd (all its threads) on one core and the "
               "client (rawio, or fio and iserfs's threads) on the others "
               "(`taskset`; see README.md, \"Method\"). Not one "
               "of the goals, which are measured on shared cores. The "
               "client's CPU is no longer taken from tgtd's, but tgtd has "
               "one core for all its threads, so raw libiscsi may be slower "
               "here than on shared cores: compare both tables.", ""]
        md += pt
    md += ["", sub + " Against the goals", "", "```"] + r.goals() + ["```"]
    md += ["", sub + " iserfs `user.iserfs.stats` after the run", "", "```",
           r.stats, "```"]
    if r.profile:
        md += ["", sub + " Where the time goes (4 KiB random read, 32 in "
               "flight)", "", "```", r.profile, "```"]
    return md


def main():
    a = sys.argv[1:]
    if len(a) == 7:
        runs_p, na_p, meta_p, stats_p, pool_p, prof_p, outdir = a
        runs = [Run(runs_p, na_p, meta_p, stats_p, prof_p)]
    elif len(a) in (3, 4):
        outdir, pool_p = a[:2]
        runs = [Run.from_dir(d) for d in a[2:]]
    else:
        sys.exit(__doc__.split("\n\n")[2])
    md = ["# iserfs benchmark results", "",
          "Produced by `bench/run.sh` (method: [README.md](README.md)). "
          "Cells: median of the repetitions, (min–max) after it. "
          "Only ratios within one run mean anything."]
    if len(runs) > 1:
        md += ["", "Two runs, one after the other: [%s](#%s) first, then "
               "[%s](#%s), each tuning named above its tables."
               % (runs[0].title(), runs[0].title().lower().replace(" ", "-"),
                  runs[1].title(), runs[1].title().lower().replace(" ", "-"))]
    md.append("")
    for i, r in enumerate(runs):
        md += run_md(r, i == 0) + [""]
    md += ["## Pool micro-benchmark (tests/mempool_bench)",
           "", "```", text(pool_p), "```"]
    with open(outdir + "/results.md", "w") as f:
        f.write("\n".join(md) + "\n")
    plot_data(runs[0].runs, runs[0].na, outdir + "/results.dat",
              runs[0].libiscsi)
    out = []
    for r in runs:
        out += ["== %s ==" % r.title()] + \
            ["%s: %s" % t for t in r.tunings] + \
            [x.replace("<br>", " / ") for x in table(r.runs, r.na, r.libiscsi)] + \
            [""] + r.goals() + [""]
    with open(outdir + "/ratios.txt", "w") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
