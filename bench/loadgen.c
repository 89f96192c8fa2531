// pathtrace-loadgen: packet-rate load for the benchmark (iperf3 is too slow
// for small packets here). Prints one JSON line with what it counted.
//   udp-sink PORT SECONDS            count datagrams received
//   udp-flood HOST PORT SECONDS SIZE send datagrams as fast as it can
//   rr-server PORT                   answer each 1-byte TCP request with 1 byte
//   rr-client HOST PORT SECONDS      1-byte request/response transactions, one at a time
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static int addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof(*ss));
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    *len = sizeof(*a4);
    return AF_INET;
  }
  if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    *len = sizeof(*a6);
    return AF_INET6;
  }
  fprintf(stderr, "bad address %s\n", host);
  exit(2);
}

static int listener(int type, int port) {
  int fd = socket(AF_INET6, type, 0), zero = 0, one = 1;
  setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any};
  if (bind(fd, (struct sockaddr *)&a, sizeof(a))) { perror("bind"); exit(1); }
  return fd;
}

static void udp_sink(int port, double seconds) {
  int fd = listener(SOCK_DGRAM, port);
  int size = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  struct timeval tv = {0, 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  static char bufs[BATCH][2048];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  for (int i = 0; i < BATCH; i++) {
    iov[i] = (struct iovec){bufs[i], sizeof(bufs[i])};
    msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
  }
  printf("{\"listening\":%d}\n", port);
  fflush(stdout);
  unsigned long long n = 0;
  double end = now() + seconds;
  while (now() < end) {
    int r = recvmmsg(fd, msgs, BATCH, 0, NULL);
    if (r > 0) n += r;
  }
  printf("{\"packets\":%llu,\"seconds\":%.3f}\n", n, seconds);
}

static void udp_flood(const char *host, int port, double seconds, int size) {
  struct sockaddr_storage ss;
  socklen_t len;
  int fd = socket(addr(host, port, &ss, &len), SOCK_DGRAM, 0);
  if (connect(fd, (struct sockaddr *)&ss, len)) { perror("connect"); exit(1); }
  static char payload[2048];
  struct mmsghdr msgs[BATCH];
  struct iovec iov = {payload, (size_t)size};
  for (int i = 0; i < BATCH; i++) msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov, .msg_iovlen = 1}};
  unsigned long long n = 0;
  double start = now(), end = start + seconds;
  while (now() < end) {
    int r = sendmmsg(fd, msgs, BATCH, 0);
    if (r > 0) n += r;
  }
  printf("{\"packets\":%llu,\"seconds\":%.3f}\n", n, now() - start);
}

static void rr_server(int port) {
  int fd = listener(SOCK_STREAM, port);
  listen(fd, 16);
  printf("{\"listening\":%d}\n", port);
  fflush(stdout);
  for (;;) {
    int c = accept(fd, NULL, NULL);
    if (c < 0) continue;
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char b;
    while (read(c, &b, 1) == 1)
      if (write(c, &b, 1) != 1) break;
    close(c);
  }
}

static void rr_client(const char *host, int port, double seconds) {
  struct sockaddr_storage ss;
  socklen_t len;
  int fd = socket(addr(host, port, &ss, &len), SOCK_STREAM, 0), one = 1;
  if (connect(fd, (struct sockaddr *)&ss, len)) { perror("connect"); exit(1); }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  unsigned long long n = 0;
  char b = 'x';
  double start = now(), end = start + seconds;
  while (now() < end) {
    if (write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1) break;
    n++;
  }
  printf("{\"transactions\":%llu,\"seconds\":%.3f}\n", n, now() - start);
}

int main(int argc, char **argv) {
  if (argc >= 4 && !strcmp(argv[1], "udp-sink")) udp_sink(atoi(argv[2]), atof(argv[3]));
  else if (argc >= 6 && !strcmp(argv[1], "udp-flood")) udp_flood(argv[2], atoi(argv[3]), atof(argv[4]), atoi(argv[5]));
  else if (argc >= 3 && !strcmp(argv[1], "rr-server")) rr_server(atoi(argv[2]));
  else if (argc >= 5 && !strcmp(argv[1], "rr-client")) rr_client(argv[2], atoi(argv[3]), atof(argv[4]));
  else {
    fprintf(stderr, "usage: pathtrace-loadgen udp-sink PORT S | udp-flood HOST PORT S SIZE | rr-server PORT | rr-client HOST PORT S\n");
    return 2;
  }
  return 0;
}
