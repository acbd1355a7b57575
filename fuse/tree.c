/* The directory of LUNs: built once at mount time, never changed. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

static int
add_node (struct fs *fs, fuse_ino_t parent, char *name, struct lun *lun)
{
  struct node *n = &fs->nodes[fs->nr_nodes++];

  if (name == NULL)
    return -ENOMEM;
  n->parent = parent;
  n->name = name;
  n->lun = lun;
  behind_init (&n->behind);
  return fs->nr_nodes;          /* the new inode number */
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
  fs->nodes = calloc (total, sizeof *fs->nodes);
  if (fs->nodes == NULL)
    return -ENOMEM;
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
    for (unsigned j = 0; j < s->nr_luns; j++)
      if (add_node (fs, dir, lun_name (&s->luns[j]), &s->luns[j]) < 0)
        return -ENOMEM;
  }
  return 0;
}

void
fs_free_tree (struct fs *fs)
{
  for (unsigned i = 0; i < fs->nr_nodes; i++) {
    free (fs->nodes[i].name);
    behind_destroy (&fs->nodes[i].behind);
  }
  free (fs->nodes);
  fs->nodes = NULL;
  fs->nr_nodes = 0;
}
