/* fe_io: block I/O figures for the demo's Linux frontend (cargo xtask demo).
 *
 * usage: fe_io DEVICE [SECONDS]
 *
 * On DEVICE, with O_DIRECT (so the page cache does not answer for the device):
 *   4 KiB random reads and writes at queue depth 1 and 32 (32 threads, each keeping one
 *   pread/pwrite in flight), at 4 KiB-aligned offsets drawn from a fixed seed;
 *   1 MiB sequential writes, then reads, wrapping around the device.
 * Each measurement ends after SECONDS (default 2) or a fixed number of requests, and
 * prints one line `name=value` (IOPS, or MB/s counted in MiB). DEVICE is overwritten.
 * Any failed request ends the program with a message naming it, exit status 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SMALL 4096
#define LARGE (1 << 20)
#define DEPTH 32
#define SEED 0x5eed5eed5eed5eedULL
#define SMALL_LIMIT 20000 /* requests per 4 KiB measurement */
#define LARGE_LIMIT 512   /* requests per 1 MiB measurement */

struct run {
	const char *device;
	int fd;
	int write;
	int sequential;
	size_t size;    /* bytes per request */
	off_t span;     /* offsets fall in [0, span) */
	long limit;     /* requests at most */
	double deadline; /* seconds on the monotonic clock */
	long claimed;   /* requests handed out (atomic) */
	long done;      /* requests completed (atomic) */
};

struct worker {
	struct run *run;
	uint64_t state; /* xorshift64 state: this worker's offsets */
	pthread_t thread;
};

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static uint64_t next_random(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

static void *aligned_buffer(size_t size, uint64_t seed)
{
	void *buffer;
	if (posix_memalign(&buffer, SMALL, size) != 0) {
		fprintf(stderr, "fe_io: cannot allocate %zu bytes\n", size);
		exit(1);
	}
	/* Data that is not all zeros, so a device cannot shortcut it. */
	for (size_t i = 0; i < size; i += sizeof(uint64_t))
		*(uint64_t *)((char *)buffer + i) = next_random(&seed);
	return buffer;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->run;
	void *buffer = aligned_buffer(r->size, w->state);
	long n;
	while ((n = __atomic_fetch_add(&r->claimed, 1, __ATOMIC_RELAXED)) < r->limit) {
		off_t blocks = r->span / (off_t)r->size;
		off_t block = r->sequential ? n % blocks : (off_t)(next_random(&w->state) % blocks);
		off_t offset = block * (off_t)r->size;
		ssize_t got = r->write ? pwrite(r->fd, buffer, r->size, offset)
				       : pread(r->fd, buffer, r->size, offset);
		if (got != (ssize_t)r->size) {
			fprintf(stderr, "fe_io: %s of %zu bytes at %lld on %s: %s\n",
				r->write ? "pwrite" : "pread", r->size, (long long)offset, r->device,
				got < 0 ? strerror(errno) : "short transfer");
			exit(1);
		}
		__atomic_fetch_add(&r->done, 1, __ATOMIC_RELAXED);
		if (now() >= r->deadline)
			break;
	}
	free(buffer);
	return NULL;
}

/* Runs `depth` workers; returns requests per second. */
static double measure(struct run *r, int depth, double seconds)
{
	struct worker workers[DEPTH];
	double start = now();
	r->deadline = start + seconds;
	r->claimed = 0;
	r->done = 0;
	for (int i = 0; i < depth; i++) {
		workers[i].run = r;
		workers[i].state = SEED ^ ((uint64_t)(i + 1) * 0x9e3779b97f4a7c15ULL);
		if (pthread_create(&workers[i].thread, NULL, work, &workers[i]) != 0) {
			fprintf(stderr, "fe_io: cannot start thread %d\n", i);
			exit(1);
		}
	}
	for (int i = 0; i < depth; i++)
		pthread_join(workers[i].thread, NULL);
	double elapsed = now() - start;
	return r->done / (elapsed > 0 ? elapsed : 1e-9);
}

static void random_4k(struct run *r, int write, int depth, double seconds)
{
	r->write = write;
	r->sequential = 0;
	r->size = SMALL;
	r->limit = SMALL_LIMIT;
	printf("rand4k_%s_qd%d_iops=%.0f\n", write ? "write" : "read", depth,
	       measure(r, depth, seconds));
	fflush(stdout);
}

static void sequential_1m(struct run *r, int write, double seconds)
{
	r->write = write;
	r->sequential = 1;
	r->size = LARGE;
	r->limit = LARGE_LIMIT;
	printf("seq1m_%s_mbs=%.1f\n", write ? "write" : "read", measure(r, 1, seconds));
	fflush(stdout);
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: fe_io DEVICE [SECONDS]\n");
		return 2;
	}
	double seconds = argc == 3 ? atof(argv[2]) : 2;
	struct run r = { .device = argv[1] };
	r.fd = open(r.device, O_RDWR | O_DIRECT);
	if (r.fd < 0) {
		fprintf(stderr, "fe_io: open %s: %s\n", r.device, strerror(errno));
		return 1;
	}
	r.span = lseek(r.fd, 0, SEEK_END);
	if (r.span < LARGE || seconds <= 0) {
		fprintf(stderr, "fe_io: %s: need at least 1 MiB and SECONDS > 0 (size %lld)\n",
			r.device, (long long)r.span);
		return 1;
	}
	random_4k(&r, 0, 1, seconds);
	random_4k(&r, 0, DEPTH, seconds);
	random_4k(&r, 1, 1, seconds);
	random_4k(&r, 1, DEPTH, seconds);
	sequential_1m(&r, 1, seconds);
	sequential_1m(&r, 0, seconds);
	close(r.fd);
	return 0;
}
