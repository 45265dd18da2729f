/* mime_date.c - RFC 5322 3.3 date-time with the obsolete forms of 4.3 and
 * the usual garbage. Tokens (words, numbers, times, numeric zones) are read
 * in any order and assigned by kind, so RFC, asctime() and date(1) orders
 * all work. */
#include "mime_int.h"

#include <stdint.h>

static const char *const months[12] = { "jan", "feb", "mar", "apr", "may", "jun",
					"jul", "aug", "sep", "oct", "nov", "dec" };
static const char *const wdays[7] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };
static const char *const month_names[12] = { "january", "february", "march", "april", "may",
					     "june", "july", "august", "september", "october",
					     "november", "december" };
static const char *const wday_names[7] = { "sunday", "monday", "tuesday", "wednesday",
					   "thursday", "friday", "saturday" };

/* RFC 5322 4.3 obs-zone names, minutes east of UTC. */
static const struct { const char *name; int min; } zones[] = {
	{ "ut", 0 }, { "gmt", 0 }, { "utc", 0 }, { "z", 0 },
	{ "est", -300 }, { "edt", -240 }, { "cst", -360 }, { "cdt", -300 },
	{ "mst", -420 }, { "mdt", -360 }, { "pst", -480 }, { "pdt", -420 },
};

struct dparse {
	int wday, day, month, year, hour, min, sec, zone;
	bool have_time, have_zone;
	int year_digits;
	unsigned flags;
};

static int word_index(const char *w, size_t n, const char *const *abbr,
		      const char *const *full, int count, unsigned *flags)
{
	for (int i = 0; i < count; i++) {
		if (mime_case_eq(w, n, abbr[i]))
			return i;
		if (mime_case_eq(w, n, full[i])) {
			*flags |= MIME_DATE_OBS;
			return i;
		}
	}
	return -1;
}

static void word(struct dparse *d, const char *w, size_t n)
{
	int i;
	if (d->month < 0 && (i = word_index(w, n, months, month_names, 12, &d->flags)) >= 0) {
		d->month = i;
	} else if (d->wday < 0 && (i = word_index(w, n, wdays, wday_names, 7, &d->flags)) >= 0) {
		d->wday = i;
	} else if (d->have_time && !d->have_zone) {
		d->have_zone = true;
		d->flags |= MIME_DATE_OBS;
		for (size_t k = 0; k < sizeof(zones) / sizeof(zones[0]); k++)
			if (mime_case_eq(w, n, zones[k].name)) {
				d->zone = zones[k].min;
				return;
			}
		/* Military letters mean nothing reliable (4.3: as -0000);
		 * anything else is unknown. */
		d->flags |= MIME_DATE_NO_ZONE;
	} else {
		d->flags |= MIME_DATE_OBS;
	}
}

static void number(struct dparse *d, int v, int digits)
{
	if (d->day < 0 && digits <= 2 && (d->month < 0 || d->year < 0)) {
		d->day = v;
		if (d->month >= 0)
			d->flags |= MIME_DATE_OBS;   /* asctime(): month before day */
	} else if (d->year < 0) {
		d->year = v;
		d->year_digits = digits;
	} else {
		d->flags |= MIME_DATE_OBS;
	}
}

/* Reads up to 9 digits at p[*i]; returns the count (more are skipped). */
static int digits(const char *p, size_t len, size_t *i, int *v)
{
	int n = 0;
	*v = 0;
	while (*i < len && p[*i] >= '0' && p[*i] <= '9') {
		if (n < 9)
			*v = *v * 10 + (p[*i] - '0');
		n++;
		(*i)++;
	}
	return n;
}

/* hh:mm[:ss] after the hour has been read. */
static void time_token(struct dparse *d, const char *p, size_t len, size_t *i, int hour)
{
	int m = -1, s = 0;
	(*i)++;
	if (digits(p, len, i, &m) != 2)
		m = 99;
	if (*i + 1 < len && p[*i] == ':' && p[*i + 1] >= '0' && p[*i + 1] <= '9') {
		(*i)++;
		if (digits(p, len, i, &s) != 2)
			s = 99;
	}
	if (d->have_time) {
		d->flags |= MIME_DATE_OBS;
		return;
	}
	d->have_time = true;
	d->hour = hour;
	d->min = m;
	d->sec = s;
}

static void tokens(struct dparse *d, const char *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		mime_skip_cfws(p, len, &i, NULL);
		if (i >= len)
			break;
		char c = p[i];
		int v;
		if (c >= '0' && c <= '9') {
			int n = digits(p, len, &i, &v);
			if (i < len && p[i] == ':' && n <= 2)
				time_token(d, p, len, &i, v);
			else
				number(d, v, n);
		} else if ((c == '+' || c == '-') && d->have_time && !d->have_zone &&
			   i + 1 < len && p[i + 1] >= '0' && p[i + 1] <= '9') {
			size_t k = i + 1;
			int n = digits(p, len, &k, &v);
			i = k;
			d->have_zone = true;
			if (n != 4 || v % 100 > 59) {
				d->flags |= MIME_DATE_NO_ZONE;
			} else {
				d->zone = (v / 100 * 60 + v % 100) * (c == '-' ? -1 : 1);
			}
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			size_t s = i;
			while (i < len && ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z')))
				i++;
			word(d, p + s, i - s);
		} else {
			if (c != ',' || d->day >= 0)
				d->flags |= MIME_DATE_OBS;   /* stray punctuation */
			i++;
		}
	}
}

/* Days since 1970-01-01 (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int month_days(int y, int m)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 1 && leap ? 29 : mdays[m];
}

int mime_date_parse(struct str value, struct mime_date *r)
{
	struct dparse d = { .wday = -1, .day = -1, .month = -1, .year = -1 };
	tokens(&d, value.p, value.len);
	*r = (struct mime_date){ 0 };
	if (d.year >= 0 && d.year_digits < 4) {
		/* RFC 5322 4.3: 2-digit years < 50 are 20xx; 3-digit add 1900. */
		d.year += d.year_digits == 3 || d.year >= 50 ? 1900 : 2000;
		d.flags |= MIME_DATE_OBS;
	}
	if (!d.have_zone)
		d.flags |= MIME_DATE_NO_ZONE;
	r->flags = d.flags;
	if (d.day < 1 || d.month < 0 || d.year < 1900 || d.year > 9999 || !d.have_time ||
	    d.day > month_days(d.year, d.month) || d.hour > 23 || d.min > 59 || d.sec > 60)
		return -1;
	int64_t days = days_from_civil(d.year, d.month + 1, d.day);
	if (d.wday >= 0 && (days % 7 + 7 + 4) % 7 != d.wday)
		r->flags |= MIME_DATE_BAD_WDAY;
	r->t = (time_t)(days * 86400 + d.hour * 3600 + d.min * 60 + d.sec - (int64_t)d.zone * 60);
	r->tz_min = d.zone;
	return 0;
}
