/* fe_tcp: TCP throughput between two frontends (cargo xtask bench-e2e).
 *
 * usage: fe_tcp recv PORT COUNT
 *        fe_tcp send ADDRESS PORT SECONDS
 *
 * recv accepts COUNT connections one after the other on PORT (any address) and, for
 * each, reads until the sender closes; it prints one line per connection:
 *   bytes=N s=T mbs=X ok=1
 * timed from the accept to the end of the stream, MB/s counted in MiB. The sender's bytes
 * are a counter (each 8-byte word holds its own offset / 8), which recv checks: ok=0
 * when a word differs (the stream was corrupted, reordered or cut short of a word).
 * send connects (retrying for up to 120 s: the receiver may not listen yet), writes the
 * counter for SECONDS, closes and prints the same line from its side.
 * Bounded: recv waits at most 300 s for a connection and 30 s for each read.
 * Exit status 1 on any failure, with a message on stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)
#define WORDS (CHUNK / 8)
#define CONNECT_SECONDS 120
#define ACCEPT_MS (300 * 1000)
#define READ_SECONDS 30

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void report(unsigned long long bytes, double seconds, int ok)
{
	printf("bytes=%llu s=%.2f mbs=%.2f ok=%d\n", bytes, seconds,
	       seconds > 0 ? bytes / 1048576.0 / seconds : 0.0, ok);
	fflush(stdout);
}

/* Reads one stream to its end, checking the counter; 0 when it was read to the end. */
static int receive(int fd)
{
	static uint64_t buf[WORDS];
	unsigned long long bytes = 0;
	int ok = 1;
	double start = now();
	/* Bytes of a word cut across two reads wait in `partial` until it is complete. */
	uint8_t partial[8];
	size_t have = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "fe_tcp: read after %llu bytes: %s\n", bytes, strerror(errno));
			return 1;
		}
		const uint8_t *p = (const uint8_t *)buf;
		size_t len = (size_t)n, i = 0;
		uint64_t word;
		/* The offset in the stream of p[i] is bytes + i. */
		while (have != 0 && i < len) {
			partial[have++] = p[i++];
			if (have == 8) {
				memcpy(&word, partial, 8);
				if (word != (bytes + i - 8) / 8)
					ok = 0;
				have = 0;
			}
		}
		for (; i + 8 <= len; i += 8) {
			memcpy(&word, p + i, 8);
			if (word != (bytes + i) / 8)
				ok = 0;
		}
		while (i < len)
			partial[have++] = p[i++];
		bytes += (unsigned long long)n;
	}
	if (have != 0)
		ok = 0;
	report(bytes, now() - start, ok);
	return 0;
}

static int do_recv(int port, int count)
{
	int listener = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
	if (listener < 0 ||
	    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(listener, 4) != 0) {
		fprintf(stderr, "fe_tcp: listen on %d: %s\n", port, strerror(errno));
		return 1;
	}
	for (int i = 0; i < count; i++) {
		struct pollfd waiting = {.fd = listener, .events = POLLIN};
		if (poll(&waiting, 1, ACCEPT_MS) != 1) {
			fprintf(stderr, "fe_tcp: no connection %d on %d within %d s\n", i + 1, port,
				ACCEPT_MS / 1000);
			return 1;
		}
		int fd = accept(listener, NULL, NULL);
		if (fd < 0) {
			fprintf(stderr, "fe_tcp: accept on %d: %s\n", port, strerror(errno));
			return 1;
		}
		struct timeval limit = {.tv_sec = READ_SECONDS};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
		int rc = receive(fd);
		close(fd);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int do_send(const char *address, int port, double seconds)
{
	static uint64_t buf[WORDS];
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
	if (inet_pton(AF_INET, address, &addr.sin_addr) != 1) {
		fprintf(stderr, "fe_tcp: not an IPv4 address: %s\n", address);
		return 1;
	}
	int fd = -1;
	double give_up = now() + CONNECT_SECONDS;
	for (;;) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0)
			break;
		int error = errno;
		if (fd >= 0)
			close(fd);
		if (now() > give_up) {
			fprintf(stderr, "fe_tcp: connect to %s:%d: %s\n", address, port,
				strerror(error));
			return 1;
		}
		usleep(500 * 1000);
	}
	unsigned long long words = 0;
	double start = now();
	double end = start + seconds;
	while (now() < end) {
		for (size_t i = 0; i < WORDS; i++)
			buf[i] = words + i;
		size_t off = 0;
		while (off < sizeof buf) {
			ssize_t n = write(fd, (const uint8_t *)buf + off, sizeof buf - off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				fprintf(stderr, "fe_tcp: write after %llu bytes: %s\n", words * 8,
					strerror(errno));
				close(fd);
				return 1;
			}
			off += (size_t)n;
		}
		words += WORDS;
	}
	if (close(fd) != 0) {
		fprintf(stderr, "fe_tcp: close: %s\n", strerror(errno));
		return 1;
	}
	report(words * 8, now() - start, 1);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "recv") == 0) {
		int port = atoi(argv[2]), count = atoi(argv[3]);
		if (port > 0 && port < 65536 && count > 0)
			return do_recv(port, count);
	} else if (argc == 5 && strcmp(argv[1], "send") == 0) {
		int port = atoi(argv[3]);
		double seconds = atof(argv[4]);
		if (port > 0 && port < 65536 && seconds > 0)
			return do_send(argv[2], port, seconds);
	}
	fprintf(stderr, "usage: fe_tcp recv PORT COUNT | fe_tcp send ADDRESS PORT SECONDS\n");
	return 1;
}
