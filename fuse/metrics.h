/* -o metrics=DIR: the counters as a Prometheus text file for
 * node_exporter's textfile collector.
 *
 * A thread of its own writes DIR/iserfs-LABEL.prom (LABEL: the mount
 * point, escaped as systemd-escape --path does) every interval seconds:
 * into DIR/iserfs-LABEL.prom.tmp, then renamed over the .prom file, so the
 * collector never reads half a file.  The file goes away at unmount: a
 * mount that is gone has no metrics, and node_exporter would otherwise
 * keep serving its last values.  Called from the main thread only. */
#ifndef ISERFS_METRICS_H
#define ISERFS_METRICS_H

/* Check DIR before anything is mounted: an existing directory we can
 * write to.  Returns 0, or -errno after printing one line. */
int metrics_check_dir (const char *dir);

/* Start writing the file for the mount at mountpoint (absolute) of url;
 * the first file is written before this returns.  0 or -errno. */
int metrics_start (const char *dir, const char *mountpoint, const char *url,
                   unsigned interval_s);

/* Stop the thread and remove the file (no-op if not started). */
void metrics_stop (void);

#endif
