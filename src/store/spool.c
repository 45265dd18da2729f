/* spool.c - message content in memory, spilling to an O_TMPFILE. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

void spool_init(struct spool *s, const char *dir)
{
	*s = (struct spool){ .fd = -1, .dir = dir };
}

static int spool_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

void spool_maybe_spill(struct spool *s)
{
	if (s->mem.len < SPOOL_MEM_MAX || s->failed)
		return;
	if (s->fd < 0)
		s->fd = open(s->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (s->fd < 0 || spool_write_all(s->fd, buf_ptr(&s->mem), s->mem.len) != 0) {
		s->failed = true;
		return;
	}
	s->file_size += s->mem.len;
	buf_clear(&s->mem);
}

uint64_t spool_size(const struct spool *s)
{
	return s->file_size + s->mem.len;
}

int spool_copy_to(const struct spool *s, int fd)
{
	off64_t off = 0;
	while ((uint64_t)off < s->file_size) {
		ssize_t n = copy_file_range(s->fd, &off, fd, NULL, s->file_size - (uint64_t)off, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* Across filesystems on old kernels: plain reads. */
			char chunk[65536];
			ssize_t r = pread(s->fd, chunk, sizeof(chunk), off);
			if (r <= 0 || spool_write_all(fd, chunk, (size_t)r) != 0)
				return -1;
			off += r;
		}
	}
	return spool_write_all(fd, buf_ptr(&s->mem), s->mem.len);
}

int spool_map(struct spool *s, const char **p_r, size_t *len_r)
{
	if (s->fd < 0) {
		*p_r = buf_ptr(&s->mem);
		*len_r = s->mem.len;
		return 0;
	}
	if (s->map == NULL) {
		if (s->mem.len > 0) {
			if (pwrite(s->fd, buf_ptr(&s->mem), s->mem.len, (off_t)s->file_size) != (ssize_t)s->mem.len)
				return -1;
			s->file_size += s->mem.len;
			buf_clear(&s->mem);
		}
		void *m = mmap(NULL, (size_t)s->file_size, PROT_READ, MAP_PRIVATE, s->fd, 0);
		if (m == MAP_FAILED)
			return -1;
		s->map = m;
		s->map_len = (size_t)s->file_size;
	}
	*p_r = s->map;
	*len_r = s->map_len;
	return 0;
}

void spool_free(struct spool *s)
{
	if (s->map)
		munmap(s->map, s->map_len);
	s->map = NULL;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	buf_free(&s->mem);
}
