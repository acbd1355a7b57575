/* The directory of LUNs: built at mount time, grown by the LUN scanner
 * (fs.h says who may touch what). */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "lunscan.h"

/* Files that may appear while mounted, beyond those found at mount time;
 * a node is never reused, so this bounds the LUNs a mount ever adds. */
#define LIVE_NODES 4096

static int
add_node (struct fs *fs, fuse_ino_t parent, char *name, struct lun *lun)
{
  unsigned nr = fs->nr_nodes;
  struct node *n = &fs->nodes[nr];

  if (name == NULL)
    return -ENOMEM;
  if (nr == fs->cap_nodes) {
    free (name);
    return -ENOSPC;
  }
  n->parent = parent;
  n->name = name;
  n->lun = lun;
  n->told_size = lun ? lun_size (lun) : 0;
  behind_init (&n->behind);
  /* Filled in before readers can see it. */
  __atomic_store_n (&fs->nr_nodes, nr + 1, __ATOMIC_RELEASE);
  return nr + 1;                /* the new inode number */
}

static char *
lun_name (const struct lun *l)
{
  char *s;

  return asprintf (&s, "lun%d", l->lun) < 0 ? NULL : s;
}

int
fs_build_tree (struct fs *fs, bool per_target_dirs)
{
  unsigned total = 1;

  for (unsigned i = 0; i < fs->nr_sessions; i++)
    total += 1 + fs->sessions[i]->nr_luns;
  fs->cap_nodes = total + LIVE_NODES;
  fs->nodes = calloc (fs->cap_nodes, sizeof *fs->nodes);
  fs->dirs = calloc (fs->nr_sessions + 1, sizeof *fs->dirs);
  fs->scans = calloc (fs->nr_sessions + 1, sizeof *fs->scans);
  if (fs->nodes == NULL || fs->dirs == NULL || fs->scans == NULL)
    return -ENOMEM;
  fs->nr_dirs = fs->nr_sessions;
  if (add_node (fs, 1, strdup ("/"), NULL) < 0)
    return -ENOMEM;
  for (unsigned i = 0; i < fs->nr_sessions; i++) {
    struct session *s = fs->sessions[i];
    fuse_ino_t dir = 1;

    if (per_target_dirs) {
      int ino = add_node (fs, 1, strdup (s->target), NULL);
      if (ino < 0)
        return ino;
      dir = ino;
    }
    fs->dirs[i] = dir;
    for (unsigned j = 0; j < s->nr_luns; j++)
      if (add_node (fs, dir, lun_name (&s->luns[j]), &s->luns[j]) < 0)
        return -ENOMEM;
  }
  return 0;
}

int
fs_add_lun (struct fs *fs, fuse_ino_t dir, struct lun *lun)
{
  return add_node (fs, dir, lun_name (lun), lun);
}

void
fs_free_tree (struct fs *fs)
{
  if (fs->scans)
    for (unsigned i = 0; i < fs->nr_dirs; i++)
      lunscan_free (fs->scans[i]);
  free (fs->scans);
  fs->scans = NULL;
  free (fs->dirs);
  fs->dirs = NULL;
  for (unsigned i = 0; i < fs->nr_nodes; i++) {
    free (fs->nodes[i].name);
    behind_destroy (&fs->nodes[i].behind);
  }
  free (fs->nodes);
  fs->nodes = NULL;
  fs->nr_nodes = 0;
}
