/* log.c - key=value event log (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *log_role = "moonpostd";
static enum log_level log_min = LOG_LVL_INFO;
static bool log_syslog;

static const char *const log_names[] = {
	"debug", "info", "notice", "warn", "error",
};

void log_init(const char *role)
{
	log_role = role;
}

void log_set_level(enum log_level lvl)
{
	log_min = lvl;
}

void log_set_syslog(bool on)
{
	if (on && !log_syslog)
		openlog("moonpostd", LOG_PID | LOG_NDELAY, LOG_MAIL);
	else if (!on && log_syslog)
		closelog();
	log_syslog = on;
}

int log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcmp(name, log_names[i]) == 0)
			return (int)i;
	return -1;
}

static int log_syslog_prio(enum log_level lvl)
{
	static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_NOTICE,
				    LOG_WARNING, LOG_ERR };
	return prio[lvl];
}

void log_msg(enum log_level lvl, const char *sid, const char *fmt, ...)
{
	if (lvl < log_min)
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	char when[32];
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);

	char sidpart[48] = "";
	if (sid != NULL)
		snprintf(sidpart, sizeof(sidpart), " sid=%s", sid);
	/* One fprintf per line: lines from several processes never interleave
	 * mid-line on a pipe (writes below PIPE_BUF are atomic). */
	fprintf(stderr, "%s.%03ldZ level=%s pid=%d role=%s%s %s\n", when,
		ts.tv_nsec / 1000000L, log_names[lvl], (int)getpid(), log_role,
		sidpart, msg);
	if (log_syslog)
		syslog(log_syslog_prio(lvl), "level=%s role=%s%s %s",
		       log_names[lvl], log_role, sidpart, msg);
}

const char *log_quote(char *dst, size_t size, const char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		char tmp[4];
		size_t n = 0;
		if (c == '"' || c == '\\') {
			tmp[n++] = '\\';
			tmp[n++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			tmp[n++] = '\\';
			tmp[n++] = 'x';
			tmp[n++] = hex[c >> 4];
			tmp[n++] = hex[c & 15];
		} else {
			tmp[n++] = (char)c;
		}
		if (o + n + 4 > size) {
			if (size >= 4) {
				memcpy(dst + (o < size - 4 ? o : size - 4), "...", 4);
				return dst;
			}
			break;
		}
		memcpy(dst + o, tmp, n);
		o += n;
	}
	if (size > 0)
		dst[o < size ? o : size - 1] = '\0';
	return dst;
}
