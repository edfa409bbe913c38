#ifndef BITCRUSH_PROBE_H
#define BITCRUSH_PROBE_H
#include <stddef.h>
#include <stdint.h>
/* Sums whole 4 KiB pages of p [bytes] on the pool's threads (a bandwidth probe; the value is a checksum). */
double probe_stream_sum(const uint8_t *p, size_t bytes);
#endif
