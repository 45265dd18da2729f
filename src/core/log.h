/* log.h - one line per event, key=value, to stderr and optionally syslog.
 *
 * Line format: "<UTC time> level=L pid=P role=R [sid=S] <message>", where
 * the message is itself key=value pairs starting with event=NAME.
 * log_quote() makes a value safe to embed: it escapes quotes, backslashes
 * and control bytes, so a peer can never forge a log line. */
#ifndef MP_LOG_H
#define MP_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level {
	LOG_LVL_DEBUG,
	LOG_LVL_INFO,
	LOG_LVL_NOTICE,
	LOG_LVL_WARN,
	LOG_LVL_ERROR,
};

/* role: short name of this process ("parent", "worker"); must be static. */
void log_init(const char *role);
void log_set_level(enum log_level lvl);
void log_set_syslog(bool on);
/* Parses "debug".."error"; returns -1 if unknown. */
int log_level_parse(const char *name);

/* sid may be NULL when no session is involved. */
void log_msg(enum log_level lvl, const char *sid, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Escapes src (len bytes) into dst (size bytes, NUL-terminated, truncated
 * with "..." when too long); returns dst for use in a "%s" argument. */
const char *log_quote(char *dst, size_t size, const char *src, size_t len);

#define log_debug(sid, ...) log_msg(LOG_LVL_DEBUG, sid, __VA_ARGS__)
#define log_info(sid, ...) log_msg(LOG_LVL_INFO, sid, __VA_ARGS__)
#define log_notice(sid, ...) log_msg(LOG_LVL_NOTICE, sid, __VA_ARGS__)
#define log_warn(sid, ...) log_msg(LOG_LVL_WARN, sid, __VA_ARGS__)
#define log_error(sid, ...) log_msg(LOG_LVL_ERROR, sid, __VA_ARGS__)

#endif
