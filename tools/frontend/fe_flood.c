/* fe_flood: a frontend that rings a doorbell as fast as it can (cargo xtask demo
 * --flood), to measure what one busy or hostile frontend costs the others.
 *
 * usage: fe_flood ADDRESS SECONDS
 *
 * Maps the page of ADDRESS from /dev/mem and writes 0 to the 32-bit register there in
 * a tight loop for SECONDS: each write traps to Xen and reaches the backend as an ioreq.
 * Prints `writes=N seconds=S`.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: fe_flood ADDRESS SECONDS\n");
		return 2;
	}
	unsigned long address = strtoul(argv[1], NULL, 0);
	double seconds = atof(argv[2]);
	long page = sysconf(_SC_PAGESIZE);
	int fd = open("/dev/mem", O_RDWR | O_SYNC);
	if (fd < 0) {
		perror("/dev/mem");
		return 1;
	}
	volatile uint8_t *base = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
				      address & ~(page - 1));
	if (base == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	volatile uint32_t *reg = (volatile uint32_t *)(base + (address & (page - 1)));
	double start = now(), end = start + seconds;
	long writes = 0;
	while (now() < end) {
		for (int i = 0; i < 64; i++)
			*reg = 0;
		writes += 64;
	}
	printf("writes=%ld seconds=%.2f\n", writes, now() - start);
	return 0;
}
