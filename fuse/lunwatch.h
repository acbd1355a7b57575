/* LUNs that come, go or change size while mounted.
 *
 * One thread (the LUN scanner) asks a target for its LUNs again -- when a
 * command met REPORTED LUNS DATA HAS CHANGED, and when a directory is
 * listed or an unknown name looked up, at most every SCAN_EVERY seconds
 * per target -- adds a file for each new disk LUN (fs_add_lun), marks a
 * LUN the target no longer reports as removed (lun.h; its requests fail
 * with EIO from then on), and takes a LUN whose block size changed or
 * which shrank for another LUN under the same number: the old file goes,
 * a new one comes.  It is also the one thread that tells the kernel to
 * drop what it cached (names of removed LUNs, attributes of resized ones):
 * a FUSE request handler must not, since the kernel holds the directory's
 * lock while it waits for that handler's answer.
 *
 * Threads: lunwatch_kick from any FUSE thread (it never waits);
 * start/stop from the main thread, after the sessions started and before
 * they stop. */
#ifndef ISERFS_LUNWATCH_H
#define ISERFS_LUNWATCH_H

struct fs;

/* Start the scanner over fs's sessions: 0 or -errno. */
int lunwatch_start (struct fs *fs);
/* A listing: scan soon, if the last scan is old enough. */
void lunwatch_kick (void);
/* Stop the scanner (waits for a scan under way, bounded by the session
 * timeout). */
void lunwatch_stop (void);

#endif
