/* mime.h - pure parsers for stored messages: RFC 5322 headers, RFC 2047
 * encoded-words, addresses, dates, the RFC 2045/2046 part tree, transfer
 * decoders, charset conversion, HTML to text and URL extraction.
 *
 * Contract shared by every function here:
 * - No I/O and no global state; safe on any thread. Input is arbitrary bytes
 *   (fuzzed): nothing here crashes, loops or reads outside (p, len).
 * - Messages are stored with LF line ends; CRLF is accepted everywhere too.
 *   Bare CR is data.
 * - Everything allocated lives in the caller's struct arena and dies with it.
 *   Results (struct str) are views into the caller's buffer whenever the bytes
 *   can be used as they are (zero copy), otherwise arena copies. Either way
 *   they are valid while both the buffer and the arena are. Views are not
 *   NUL-terminated; arena copies are.
 * - Offsets are byte offsets from the start of the buffer handed in.
 * - Malformed input never fails a parse: it is tolerated the way common MUAs
 *   do and recorded in flags (broken MIME is itself a spam signal).
 *
 * Files: mime_header.c (headers), mime_2047.c, mime_charset.c,
 * mime_addr.c, mime_ctype.c (Content-Type & co, RFC 2231), mime_part.c (part
 * tree), mime_decode.c (base64, QP, part text), mime_html.c, mime_url.c,
 * mime_date.c; mime_util.c and mime_int.h hold shared internals.
 *
 * Cost: mime_parse() reads each byte of a part once per nesting level
 * (memchr for line ends, memchr on '-' for delimiters): ~3 us for a 10 KB
 * multipart message. Text, HTML and URL functions run only when called. */
#ifndef MP_MIME_H
#define MP_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/arena.h"
#include "core/buf.h"

/* ---- Limits (style rule 2) ------------------------------------------- */

struct mime_limits {
	/* Bytes of one header field incl. folding. A longer field is kept with
	 * raw/value cut at this size and MIME_HDR_TRUNCATED. Default 64 KiB. */
	size_t header_field_max;
	/* Physical header line length over which MIME_HDR_LONG_LINE is set
	 * (RFC 5322 2.1.1: 998). Only a flag. Default 998. */
	size_t header_line_max;
	/* Fields kept per header block; later ones are skipped (the block is
	 * still scanned to its end) and MIME_HDRS_TOO_MANY is set. Default 1000. */
	unsigned header_count_max;
	/* Nesting depth of parts (root = 0). A multipart or message/rfc822 at
	 * this depth is a leaf, flagged MIME_PART_DEPTH_LIMIT. Default 20. */
	unsigned depth_max;
	/* Parts in the whole tree, root and encapsulated messages included.
	 * The part that reaches it takes the rest of its parent's body as one
	 * leaf, flagged MIME_PART_PARTS_LIMIT. Default 500. */
	unsigned parts_max;
};

#define MIME_HEADER_FIELD_MAX  (64 * 1024)
#define MIME_HEADER_LINE_MAX   998
#define MIME_HEADER_COUNT_MAX  1000
#define MIME_DEPTH_MAX         20
#define MIME_PARTS_MAX         500
/* Parameters kept per Content-Type / Content-Disposition; more are ignored
 * and MIME_PARAM_TOO_MANY is set. */
#define MIME_PARAMS_MAX        64

extern const struct mime_limits mime_limits_default;

/* ---- Headers (RFC 5322 2.2) ------------------------------------------ */

/* Flags of one field. */
enum {
	MIME_HDR_BROKEN    = 1 << 0,  /* no ':' (the whole line is the name, as
					 Dovecot does), an invalid name, or a
					 continuation line first in the block */
	MIME_HDR_TRUNCATED = 1 << 1,  /* over header_field_max */
	MIME_HDR_LONG_LINE = 1 << 2,  /* a line over header_line_max */
	MIME_HDR_NAME_WSP  = 1 << 3,  /* whitespace before ':' (obs-optional) */
};

struct mime_header {
	struct str name;    /* before ':', trailing WSP removed; a view */
	struct str raw;     /* after ':' up to the field's last line end (not
			       included), folding intact; a view */
	struct str value;   /* raw unfolded (line ends before WSP removed,
			       RFC 5322 2.2.3) and trimmed of WSP; a view unless
			       the field was folded */
	size_t offset;      /* of the field's first byte */
	size_t size;        /* of the whole field incl. its last line end */
	unsigned flags;     /* MIME_HDR_* */
};

/* Flags of a header block: every field's flags OR'd, plus these. */
enum {
	MIME_HDRS_TOO_MANY = 1 << 8,  /* over header_count_max */
	MIME_HDRS_NO_END   = 1 << 9,  /* no empty line: the block runs to the
					 end of the buffer or part */
};

/* Zero-allocation iteration over the fields of one header block. */
struct mime_header_iter {
	const char *p;
	size_t pos, end;
	size_t body_offset;   /* set when mime_header_next() returns 0 */
	size_t lines;         /* line ends in the block so far, incl. the
				 empty line; CRLF ones counted in crlf */
	size_t crlf;
	unsigned flags;       /* MIME_HDRS_NO_END once known */
	const struct mime_limits *lim;
};

/* Iterates the header block in p[start, end). lim may be NULL (defaults). */
void mime_header_iter_init(struct mime_header_iter *it, const char *p, size_t start,
			   size_t end, const struct mime_limits *lim);
/* Returns 1 with the next field in *h_r (h_r->value is left as the trimmed
 * raw value: unfolding needs an arena, see mime_header_unfold()), or 0 at
 * the end of the block, when it->body_offset is the offset just after the
 * empty line (or end when there is none). */
int mime_header_next(struct mime_header_iter *it, struct mime_header *h_r);
/* The unfolded, trimmed form of raw: a view if raw has no line end. */
struct str mime_header_unfold(struct arena *a, struct str raw);

struct mime_headers {
	struct mime_header *v;   /* in message order */
	size_t count;
	size_t offset, size;     /* the block incl. its empty line */
	size_t vsize;            /* size with every bare LF counted as CRLF */
	size_t body_offset;      /* = offset + size */
	unsigned flags;          /* MIME_HDR_* | MIME_HDRS_* */
};

/* Parses the header block at p[start, end) with values unfolded. Never fails. */
void mime_headers_parse(struct arena *a, const char *p, size_t start, size_t end,
			const struct mime_limits *lim, struct mime_headers *r);
/* First field with this name (ASCII case-insensitive), or NULL. */
const struct mime_header *mime_headers_get(const struct mime_headers *h, const char *name);
/* Next field named name after prev (NULL: from the start), or NULL: loops
 * over all of them, e.g. every Received. */
const struct mime_header *mime_headers_next(const struct mime_headers *h, const char *name,
					    const struct mime_header *prev);

/* ---- Decoder flags, shared by RFC 2047, charsets and transfer decoders - */

enum {
	MIME_DEC_BAD_BASE64     = 1 << 0,  /* invalid bytes or a partial quantum */
	MIME_DEC_BAD_QP         = 1 << 1,  /* '=' not followed by hex or a line end */
	MIME_DEC_UNKNOWN_CHARSET = 1 << 2, /* bytes kept, made valid UTF-8 */
	MIME_DEC_BAD_CHARSET    = 1 << 3,  /* invalid sequences became U+FFFD */
	MIME_DEC_BAD_2047       = 1 << 4,  /* a malformed encoded-word, kept as is */
	MIME_DEC_HAS_2047       = 1 << 5,  /* at least one encoded-word decoded */
	MIME_DEC_UNKNOWN_CTE    = 1 << 6,  /* unknown Content-Transfer-Encoding:
					      body returned as it is */
};

/* ---- RFC 2047 encoded-words ------------------------------------------ */

/* Decodes the encoded-words in a header value to UTF-8 (B and Q; charset
 * and optional RFC 2231 "*lang"). Adjacent encoded-words separated only by
 * whitespace are joined, and consecutive words in the same charset are
 * converted together (a character may be split across words). Like Dovecot
 * and Thunderbird, words not delimited by whitespace are decoded too.
 * Text outside encoded-words is kept byte for byte (RFC 6532 UTF-8 or raw
 * 8-bit). Returns in itself when it holds no "=?". *flags_r (may be NULL)
 * gets MIME_DEC_* OR'd in. */
struct str mime_2047_decode(struct arena *a, struct str in, unsigned *flags_r);

/* ---- Charsets -------------------------------------------------------- */

/* Converts in (charset) to UTF-8. utf-8, us-ascii, iso-8859-1 and
 * windows-1252 are converted natively (iso-8859-1 as windows-1252, as
 * WHATWG and MUAs do; 8-bit "us-ascii" that is not UTF-8 too), anything
 * else through iconv(3) with a few alias fixes (gb2312 -> GB18030,
 * ks_c_5601-1987 -> CP949, shift_jis -> CP932, ...). An empty charset means
 * us-ascii. Invalid sequences become U+FFFD (MIME_DEC_BAD_CHARSET). An
 * unknown charset keeps the bytes, made valid UTF-8
 * (MIME_DEC_UNKNOWN_CHARSET); a known-looking name is only tried with iconv
 * when in is not plain ASCII. Returns in itself (zero copy) when in is
 * plain ASCII in an ASCII-compatible charset, or valid UTF-8 labelled
 * utf-8, us-ascii or unknown. Flags OR'd into *flags_r (may be NULL). */
struct str mime_charset_to_utf8(struct arena *a, struct str charset, struct str in,
				unsigned *flags_r);
/* True when charset names a conversion we have (natively or by iconv); an
 * empty name is us-ascii. For rules: the label says who wrote the text. */
bool mime_charset_known(struct str charset);
bool mime_utf8_valid(const char *p, size_t len);

/* ---- Addresses (RFC 5322 3.4) ---------------------------------------- */

enum mime_addr_kind {
	MIME_ADDR_MAILBOX,
	MIME_ADDR_GROUP_START,   /* name/name_raw = the group's display name */
	MIME_ADDR_GROUP_END,     /* closes the last group; all strings empty */
};

enum {
	MIME_ADDR_NO_DOMAIN  = 1 << 0,  /* no '@' (or nothing after it) */
	MIME_ADDR_NO_LOCAL   = 1 << 1,  /* nothing before '@' */
	MIME_ADDR_BAD_SYNTAX = 1 << 2,  /* unbalanced <>/quotes/comments, text
					   after '>', a phrase without <> ... */
	MIME_ADDR_NAME_FROM_COMMENT = 1 << 3, /* "a@b (Name)": name taken
					   from the comment, as Dovecot does */
	MIME_ADDR_GROUP_UNCLOSED = 1 << 4, /* list flag: group without ';' */
};

struct mime_addr {
	enum mime_addr_kind kind;
	struct str raw;       /* this entry's original text, trimmed */
	struct str name;      /* display name, RFC 2047-decoded UTF-8 */
	struct str name_raw;  /* display name as written: quotes and comments
				 removed, whitespace runs collapsed, encoded-words
				 intact (IMAP ENVELOPE sends this) */
	struct str route;     /* obsolete source route "@a,@b" (IMAP adl) */
	struct str local;     /* local part, quotes and CFWS removed */
	struct str domain;    /* domain, CFWS removed; empty when missing */
	struct str addr;      /* local@domain, or local when no domain */
	unsigned flags;       /* MIME_ADDR_* */
};

struct mime_addr_list {
	struct mime_addr *v;
	size_t count;         /* entries incl. group markers */
	unsigned flags;       /* every entry's flags OR'd */
};

/* Parses an address-list header value (unfolded, e.g. mime_header.value).
 * Tolerant: bare addresses, missing '>' or ';', commas inside quotes,
 * unquoted dots in names, addresses with several '@' (split at the last).
 * Empty entries (",,") are skipped. Never fails. */
void mime_addr_parse(struct arena *a, struct str value, struct mime_addr_list *r);

/* ---- Dates (RFC 5322 3.3, obsolete forms 4.3) ------------------------ */

enum {
	MIME_DATE_OBS     = 1 << 0,  /* 2/3-digit year, zone name, comments... */
	MIME_DATE_NO_ZONE = 1 << 1,  /* zone missing or unknown: taken as UTC */
	MIME_DATE_BAD_WDAY = 1 << 2, /* day-of-week does not match the date */
};

struct mime_date {
	time_t t;          /* UTC */
	int tz_min;        /* zone offset east of UTC in minutes (-0200 = -120) */
	unsigned flags;    /* MIME_DATE_* */
};

/* Parses a Date header value: [day-of-week ","] day month year hh:mm[:ss]
 * zone, with obsolete forms (2-digit years, zone names, military zones,
 * comments, missing seconds or zone) and common garbage (full month names,
 * dots, asctime() order "Mon Jan  2 15:04:05 2006"). Returns 0, or -1 when
 * no date can be found (r->flags still set). Years 1900-9999. */
int mime_date_parse(struct str value, struct mime_date *r);

/* ---- Content-Type and friends (RFC 2045, 2183, 2231) ----------------- */

enum {
	MIME_PARAM_BAD_SYNTAX = 1 << 0,  /* missing '/', '=', closing quote... */
	MIME_PARAM_TOO_MANY   = 1 << 1,  /* over MIME_PARAMS_MAX */
	MIME_PARAM_BAD_2231   = 1 << 2,  /* missing continuation sections */
};

struct mime_param {
	struct str name;   /* as written, without the RFC 2231 "*N*" suffix */
	struct str value;  /* UTF-8: unquoted; RFC 2231 sections joined,
			      %XX-decoded and converted from their charset; or
			      RFC 2047-decoded (common, invalid, for name= and
			      filename=). Use raw for boundary. */
	struct str raw;    /* unquoted, sections joined, not decoded: for an
			      extended value "charset'lang'%XX.." */
	bool extended;     /* raw is RFC 2231 extended: IMAP sends "name*" */
};

struct mime_ctype {
	struct str type;     /* as written, e.g. "Text"; empty if none */
	struct str subtype;  /* empty for Content-Disposition */
	struct mime_param *params;
	size_t nparams;
	unsigned flags;      /* MIME_PARAM_* */
};

/* "type/subtype *(; param)": Content-Type. Tolerates comments, trailing
 * ';', unquoted values with spaces, parameters without a value (value
 * empty). Returns 0, or -1 when there is no type/subtype (r still holds
 * what was found). */
int mime_ctype_parse(struct arena *a, struct str value, struct mime_ctype *r);
/* "token *(; param)": Content-Disposition; subtype stays empty. 0 / -1. */
int mime_disposition_parse(struct arena *a, struct str value, struct mime_ctype *r);
/* First parameter with this name (ASCII case-insensitive), or NULL. */
const struct mime_param *mime_param_get(const struct mime_ctype *c, const char *name);

/* ---- The part tree (RFC 2045, 2046) ---------------------------------- */

enum mime_enc {
	MIME_ENC_7BIT,       /* also when the header is missing */
	MIME_ENC_8BIT,
	MIME_ENC_BINARY,
	MIME_ENC_QP,
	MIME_ENC_BASE64,
	MIME_ENC_UNKNOWN,    /* part->enc_raw says what; body taken as is */
};

/* Flags of a part; the message's flags are every part's OR'd. */
enum {
	MIME_PART_NO_BOUNDARY      = 1 << 0,  /* multipart without boundary=:
						 parsed as a leaf */
	MIME_PART_BOUNDARY_MISSING = 1 << 1,  /* no delimiter line in the body:
						 no children */
	MIME_PART_NO_END_BOUNDARY  = 1 << 2,  /* no close delimiter: the last
						 child runs to the end */
	MIME_PART_DEPTH_LIMIT      = 1 << 3,
	MIME_PART_PARTS_LIMIT      = 1 << 4,
	MIME_PART_BAD_ENCODING     = 1 << 5,  /* unknown CTE; or base64/QP on a
						 multipart (RFC 2045 6.4: split
						 anyway) or on a message/rfc822
						 (then not parsed inside) */
	MIME_PART_BAD_CTYPE        = 1 << 6,  /* unparsable Content-Type:
						 default type used */
	MIME_PART_BAD_HEADER       = 1 << 7,  /* a MIME_HDR_BROKEN field */
	MIME_PART_BAD_PARAMS       = 1 << 8,  /* MIME_PARAM_* in a Content-* */
};

struct mime_part {
	struct mime_part *parent, *children, *next;  /* children in order */
	unsigned nchildren;
	unsigned depth;        /* root 0; children of a part are depth + 1 */
	unsigned index;        /* preorder position, root 0 */
	struct mime_headers hdr;   /* hdr.offset/size: the header block */
	size_t body_offset, body_size;
	size_t body_lines;     /* LF count in the body (IMAP "lines") */
	size_t body_vsize;     /* body_size with bare LF counted as CRLF */
	/* Content-Type; "text/plain; charset=us-ascii" when missing or bad
	 * (message/rfc822 as a child of multipart/digest). */
	struct mime_ctype ctype;
	struct str charset;    /* the charset parameter, or empty */
	struct str boundary;   /* the boundary parameter (raw), or empty */
	enum mime_enc enc;
	struct str enc_raw;    /* Content-Transfer-Encoding as written */
	struct mime_ctype disp;    /* Content-Disposition; disp.type empty if none */
	struct str filename;   /* decoded UTF-8: disposition filename, else
				  Content-Type name; empty if none */
	/* Unfolded values of these headers, empty when absent. */
	struct str id, description, language, location, md5;
	unsigned flags;        /* MIME_PART_* */
};

/* A message/rfc822 (or message/global) part that was parsed has exactly one
 * child: the encapsulated message's root part (its hdr = the inner header,
 * what IMAP ENVELOPE and BODYSTRUCTURE need). A multipart may have no
 * children (MIME_PART_BOUNDARY_MISSING); IMAP must then invent one. */

struct mime_message {
	const char *data;      /* the caller's buffer */
	size_t len;
	struct mime_part *root;
	struct mime_part **parts;  /* all parts in preorder; parts[0] = root */
	unsigned nparts;
	unsigned flags;        /* MIME_PART_* of all parts */
};

/* Parses the whole message p[0, len) into a part tree. lim may be NULL.
 * Ranges of every part lie inside [0, len), children inside their parent's
 * body. The message buffer must outlive the result. Never fails. */
void mime_parse(struct arena *a, const char *p, size_t len, const struct mime_limits *lim,
		struct mime_message *r);
/* "text" part meant for display: type text (any subtype), not an
 * attachment (disposition "attachment" or a filename). */
bool mime_part_is_text(const struct mime_part *p);
bool mime_part_is_type(const struct mime_part *p, const char *type, const char *subtype);

/* ---- Transfer decoding and text -------------------------------------- */

/* Lenient base64: skips whitespace and invalid bytes (like MUAs), stops a
 * quantum at '='. out needs room for len / 4 * 3 + 3 bytes. Returns the
 * decoded length; flags OR'd into *flags_r (may be NULL). */
size_t mime_base64_decode(const char *in, size_t len, char *out, unsigned *flags_r);
/* Quoted-printable (RFC 2045 6.7): soft line breaks, trailing whitespace
 * removed; an invalid '=' is kept as a literal. With header (RFC 2047 Q),
 * '_' is a space. out needs room for len bytes. Returns the length. */
size_t mime_qp_decode(const char *in, size_t len, char *out, bool header, unsigned *flags_r);
/* The part's body undone from its Content-Transfer-Encoding: a view into
 * the message for 7bit/8bit/binary/unknown, else an arena copy. */
struct str mime_part_decode(struct arena *a, const struct mime_message *m,
			    const struct mime_part *p, unsigned *flags_r);

struct mime_link {
	struct str href;     /* entity-decoded, trimmed */
	struct str text;     /* the anchor's text: a view into mime_text.text */
};

struct mime_text {
	struct str text;        /* UTF-8 with LF line ends */
	bool html;              /* converted from text/html */
	struct mime_link *links;    /* <a>/<area> hrefs, in order */
	size_t nlinks;
	unsigned flags;         /* MIME_DEC_* */
};

/* HTML to text: tags stripped, block tags become line breaks, whitespace
 * runs collapsed, <script>, <style> and comments dropped, common entities
 * and numeric references decoded. Links (up to MIME_HTML_LINKS_MAX) are
 * kept with their anchor text. html should be UTF-8. */
#define MIME_HTML_LINKS_MAX 1000
void mime_html_to_text(struct arena *a, struct str html, struct mime_text *r);
/* A part's text: transfer-decoded, converted to UTF-8 from its charset
 * (for text/html without one, the <meta> charset in its first 1 KB), CRLF
 * made LF, and HTML made text for text/html. Works on any leaf; the
 * caller picks parts (mime_part_is_text). */
void mime_part_text(struct arena *a, const struct mime_message *m, const struct mime_part *p,
		    struct mime_text *r);

/* ---- URLs ------------------------------------------------------------ */

enum {
	MIME_URL_HREF      = 1 << 0,  /* from an HTML link, not the text */
	MIME_URL_NO_SCHEME = 1 << 1,  /* "www.example.com/..." in text */
};

struct mime_url {
	struct str url;      /* as found (a view into the text or the href) */
	struct str scheme;   /* "http", "https", "ftp", "mailto"...; empty
				for MIME_URL_NO_SCHEME */
	struct str host;     /* host part (userinfo and port removed; for
				mailto: the domain); may be empty */
	unsigned flags;      /* MIME_URL_* */
};

/* Splits one URL into scheme and host; 0, or -1 when it has neither a
 * "scheme:" nor a "www." start (r->url still set). */
int mime_url_parse(struct str url, struct mime_url *r);
/* URLs in plain text: http://, https://, ftp://, mailto: and "www." words,
 * trailing punctuation removed. Appends at most max - *count_r entries to
 * the array *urls_r (grown in the arena; start with NULL and 0). */
void mime_urls_find(struct arena *a, struct str text, size_t max, struct mime_url **urls_r,
		    size_t *count_r);
/* The URLs of a part's text: its links' hrefs (MIME_URL_HREF) then the URLs
 * in its text, at most max in total; same array convention. */
void mime_text_urls(struct arena *a, const struct mime_text *t, size_t max,
		    struct mime_url **urls_r, size_t *count_r);

#endif
