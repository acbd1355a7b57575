/* Logging: stderr while in the foreground, syslog once daemonized. */
#ifndef ISERFS_LOG_H
#define ISERFS_LOG_H

#include <stdbool.h>
#include <stddef.h>

void log_use_syslog (bool on);
void log_set_debug (bool on);
bool log_debug_enabled (void);

void log_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void log_info (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void log_debug (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* Copy the first line of src (libiscsi's errors span several). */
void first_line (char *dst, size_t len, const char *src);

#endif
