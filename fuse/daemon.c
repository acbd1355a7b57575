/* See daemon.h. */
#include <config.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

static int ready_fd = -1;

void
daemon_fork (void)
{
  int fds[2];
  pid_t pid;
  char verdict;

  if (pipe2 (fds, O_CLOEXEC) < 0) {
    log_error ("pipe: %m");
    exit (1);
  }
  pid = fork ();
  if (pid < 0) {
    log_error ("fork: %m");
    exit (1);
  }
  if (pid == 0) {
    close (fds[0]);
    ready_fd = fds[1];
    return;
  }
  /* The child reports success with one byte; failure is its exit, which
   * closes the pipe (it has already printed why). */
  close (fds[1]);
  if (read (fds[0], &verdict, 1) == 1)
    _exit (0);
  waitpid (pid, NULL, 0);
  _exit (1);
}

void
daemon_ready (void)
{
  int null;
  char ok = 0;

  if (ready_fd < 0)
    return;
  setsid ();
  if (chdir ("/") < 0)
    log_error ("chdir /: %m");
  null = open ("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2 (null, 0);
    dup2 (null, 1);
    dup2 (null, 2);
    if (null > 2)
      close (null);
  }
  log_use_syslog (true);
  if (write (ready_fd, &ok, 1) != 1)
    log_error ("cannot tell the parent the mount is ready: %m");
  close (ready_fd);
  ready_fd = -1;
}
