/* smtp_parse.c - splits SMTP command lines; no I/O (fuzzed). */
#include "smtp.h"

static bool smtp_verb_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-' ||
	       (c >= '0' && c <= '9');
}

int smtp_cmd_parse(struct str line, struct smtp_cmd *cmd)
{
	size_t i = 0;
	/* RFC 5321 2.4: commands are US-ASCII; a NUL or control byte in a
	 * command line is never legitimate and is a classic smuggling tool. */
	for (size_t k = 0; k < line.len; k++) {
		unsigned char ch = (unsigned char)line.p[k];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return -1;
	}
	while (i < line.len && smtp_verb_char((unsigned char)line.p[i]))
		i++;
	if (i == 0 || (i < line.len && line.p[i] != ' ' && line.p[i] != '\t'))
		return -1;
	cmd->verb = (struct str){ line.p, i };
	cmd->args = str_trim((struct str){ line.p + i, line.len - i });
	return 0;
}
