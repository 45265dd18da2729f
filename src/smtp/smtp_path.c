/* smtp_path.c - MAIL FROM / RCPT TO argument parsing (RFC 5321 4.1.2,
 * 4.1.1.2-3); pure, no I/O (fuzzed with the command parser). */
#include "smtp.h"

#include <string.h>

static bool path_atext(unsigned char c)
{
	/* RFC 5322 atext, plus 8-bit bytes for SMTPUTF8 (RFC 6531). */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL) || c >= 0x80;
}

static bool path_domain_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '[' || c == ']' || c == ':' || c >= 0x80;
}

/* Validates "local@domain" (or bare "postmaster" when allowed). */
static int path_check_mailbox(struct str a, bool allow_postmaster)
{
	if (allow_postmaster && str_case_eq(a, "postmaster"))
		return 0;
	const char *at = NULL;
	size_t i = 0;
	if (a.len > 0 && a.p[0] == '"') {
		/* Quoted-string local part: qtext and quoted pairs. */
		for (i = 1; i < a.len && a.p[i] != '"'; i++) {
			if (a.p[i] == '\\')
				i++;
			else if ((unsigned char)a.p[i] < 0x20)
				return -1;
		}
		if (i >= a.len)
			return -1;
		i++;
		at = i < a.len && a.p[i] == '@' ? a.p + i : NULL;
	} else {
		for (; i < a.len && a.p[i] != '@'; i++)
			if (!path_atext((unsigned char)a.p[i]))
				return -1;
		at = i < a.len ? a.p + i : NULL;
	}
	size_t local = (size_t)(at ? at - a.p : 0);
	if (at == NULL || local == 0 || local > SMTP_LOCAL_MAX)
		return -1;
	size_t dlen = a.len - local - 1;
	if (dlen == 0 || dlen > SMTP_DOMAIN_MAX)
		return -1;
	for (size_t k = 1; k <= dlen; k++)
		if (!path_domain_char((unsigned char)at[k]))
			return -1;
	return 0;
}

int smtp_path_parse(struct str args, const char *keyword, bool allow_postmaster,
		    struct smtp_path *out)
{
	size_t kl = strlen(keyword);
	if (!str_case_prefix(args, keyword))
		return -1;
	struct str r = str_trim((struct str){ args.p + kl, args.len - kl });
	size_t end;
	if (r.len > 0 && r.p[0] == '<') {
		const char *gt = memchr(r.p, '>', r.len);
		if (gt == NULL)
			return -1;
		out->addr = (struct str){ r.p + 1, (size_t)(gt - r.p) - 1 };
		end = (size_t)(gt - r.p) + 1;
		/* RFC 5321 4.1.2: an obsolete source route "@a,@b:" is ignored. */
		if (out->addr.len > 0 && out->addr.p[0] == '@') {
			const char *colon = memchr(out->addr.p, ':', out->addr.len);
			if (colon == NULL)
				return -1;
			out->addr.len -= (size_t)(colon + 1 - out->addr.p);
			out->addr.p = colon + 1;
		}
	} else {
		/* Postfix accepts an address without brackets; so do we. */
		end = 0;
		while (end < r.len && r.p[end] != ' ')
			end++;
		out->addr = (struct str){ r.p, end };
	}
	if (end < r.len && r.p[end] != ' ')
		return -1;
	out->params = str_trim((struct str){ r.p + end, r.len - end });
	if (out->addr.len > SMTP_PATH_MAX)
		return -1;
	if (out->addr.len == 0)
		return 0;   /* the null reverse-path; the caller decides */
	return path_check_mailbox(out->addr, allow_postmaster);
}

int smtp_param_next(struct str *params, struct str *key, struct str *value)
{
	struct str p = str_trim(*params);
	if (p.len == 0)
		return 0;
	size_t n = 0;
	while (n < p.len && p.p[n] != ' ')
		n++;
	struct str item = { p.p, n };
	const char *eq = memchr(item.p, '=', item.len);
	*key = (struct str){ item.p, eq ? (size_t)(eq - item.p) : item.len };
	*value = eq ? (struct str){ eq + 1, item.len - key->len - 1 } : (struct str){ "", 0 };
	*params = (struct str){ p.p + n, p.len - n };
	return key->len > 0 ? 1 : -1;
}
