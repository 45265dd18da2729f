/* test_mime_date.c - Date header values: RFC 5322, obsolete forms
 * (2-digit years, zone names), asctime()/date(1) orders and garbage. */
#include "mime/mime.h"
#include "tap.h"

/* 2024-01-05 10:20:30 UTC */
#define T0 1704450030

static void check(const char *in, long long want_t, int want_tz, unsigned want_flags,
		  const char *what)
{
	struct mime_date d;
	int r = mime_date_parse(str_from_cstr(in), &d);
	int good = r == 0 && (long long)d.t == want_t && d.tz_min == want_tz && d.flags == want_flags;
	ok(good, "%s", what);
	if (!good)
		printf("#   r %d t %lld (want %lld) tz %d flags %#x\n", r, (long long)d.t, want_t,
		       d.tz_min, d.flags);
}

static void bad(const char *in, const char *what)
{
	struct mime_date d;
	is_int(mime_date_parse(str_from_cstr(in), &d), -1, "invalid: %s", what);
}

int main(void)
{
	check("Fri, 05 Jan 2024 10:20:30 +0000", T0, 0, 0, "RFC 5322");
	check("Fri, 5 Jan 2024 11:20:30 +0100", T0, 60, 0, "positive zone");
	check("5 Jan 2024 05:50:30 -0430", T0, -270, 0, "no day-of-week, negative zone");
	check("Fri, 05 Jan 2024 10:20:30 +0000 (UTC)", T0, 0, 0, "trailing comment");
	check("Fri, 05 Jan 2024 10:20 +0000", T0 - 30, 0, 0, "no seconds");
	check("  Fri ,  05   Jan  2024  10:20:30  +0000  ", T0, 0, 0, "extra whitespace");
	check("Fri, 05 Jan 24 10:20:30 +0000", T0, 0, MIME_DATE_OBS, "2-digit year < 50 is 20xx");
	check("Mon, 05 Jan 98 10:20:30 +0000", 883995630, 0, MIME_DATE_OBS,
	      "2-digit year >= 50 is 19xx");
	check("Fri, 05 Jan 124 10:20:30 +0000", T0, 0, MIME_DATE_OBS, "3-digit year + 1900");
	check("Fri, 05 Jan 2024 05:20:30 EST", T0, -300, MIME_DATE_OBS, "zone name EST");
	check("Fri, 05 Jan 2024 03:20:30 PDT", T0, -420, MIME_DATE_OBS, "zone name PDT");
	check("Fri, 05 Jan 2024 10:20:30 GMT", T0, 0, MIME_DATE_OBS, "GMT");
	check("Fri, 05 Jan 2024 10:20:30 CEST", T0, 0, MIME_DATE_OBS | MIME_DATE_NO_ZONE,
	      "unknown zone name: UTC, flagged");
	check("Fri, 05 Jan 2024 10:20:30", T0, 0, MIME_DATE_NO_ZONE, "no zone");
	check("Fri, 05 Jan 2024 10:20:30 +00", T0, 0, MIME_DATE_NO_ZONE, "short numeric zone");
	check("Fri Jan  5 10:20:30 2024", T0, 0, MIME_DATE_OBS | MIME_DATE_NO_ZONE, "asctime()");
	check("Fri Jan  5 10:20:30 UTC 2024", T0, 0, MIME_DATE_OBS, "date(1)");
	check("Friday, 05 January 2024 10:20:30 +0000", T0, 0, MIME_DATE_OBS, "full names");
	check("Mon, 05 Jan 2024 10:20:30 +0000", T0, 0, MIME_DATE_BAD_WDAY, "wrong day-of-week");
	check("Thu, 29 Feb 2024 00:00:00 +0000", 1709164800, 0, 0, "leap day");
	check("Fri, 31 Dec 1999 23:59:60 +0000", 946684800, 0, 0, "leap second");
	check("Thu, 01 Jan 1970 00:00:00 +0000", 0, 0, 0, "epoch");
	check("Sat, 01 Jan 1910 00:00:00 +0000", -1893456000, 0, 0, "before the epoch");
	bad("", "empty");
	bad("yesterday", "words");
	bad("Fri, 05 Jan 2024", "no time");
	bad("Fri, 30 Feb 2024 10:20:30 +0000", "30 February");
	bad("Fri, 05 Foo 2024 10:20:30 +0000", "unknown month");
	bad("Fri, 05 Jan 2024 25:20:30 +0000", "hour 25");
	bad("Fri, 05 Jan 2024 10:61:30 +0000", "minute 61");
	bad("Fri, 05 Jan 12345 10:20:30 +0000", "5-digit year");
	check("Fri, 05 Jan 2024 10:20:30:40:50 +0000", T0, 0, MIME_DATE_OBS, "trailing junk flagged");
	bad("Fri, 05 Jan 99999999999999999999 10:20:30 +0000", "huge number");
	return tap_done();
}
