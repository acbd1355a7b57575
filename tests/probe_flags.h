/* The open flags of ioprobe and aioprobe, from "r|w|rw[,trunc,direct,sync]".
 * Include after defining usage(): a word it does not know ends the program
 * there.  Returns the flags for open(2). */
#ifndef ISERFS_PROBE_FLAGS_H
#define ISERFS_PROBE_FLAGS_H

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

static int
parse_flags (const char *s)
{
  int acc = -1, extra = 0;
  char *copy = strdup (s), *save = NULL;

  for (char *t = strtok_r (copy, ",", &save); t; t = strtok_r (NULL, ",", &save)) {
    if (!strcmp (t, "r")) acc = O_RDONLY;
    else if (!strcmp (t, "w")) acc = O_WRONLY;
    else if (!strcmp (t, "rw")) acc = O_RDWR;
    else if (!strcmp (t, "trunc")) extra |= O_TRUNC;
    else if (!strcmp (t, "direct")) extra |= O_DIRECT;
    else if (!strcmp (t, "sync")) extra |= O_SYNC;
    else usage ();
  }
  free (copy);
  if (acc < 0)
    usage ();
  return acc | extra;
}

#endif
