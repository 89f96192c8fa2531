// pathtrace-nfq: a program listening on an NFQUEUE queue, for the tests, over raw netlink (libnetfilter_queue
// does the same; it is not needed for this much). Binds the queue in its network namespace and gives every
// packet queued there the same verdict:
//   pathtrace-nfq QUEUE accept|drop|hold [maxlen N] [fail-open]
// accept and drop answer each packet; hold answers none, so the queue fills (with maxlen N it holds N packets,
// and the next ones overflow: dropped, or accepted with fail-open). Prints one JSON line once bound
// ({"queue":N,"portid":P,"pid":P}), then one per packet it answered ({"id":I,"verdict":"drop"}), and runs
// until it is killed.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fd;
static uint16_t queue;

/** A netfilter netlink message under way: header, nfgenmsg, attributes. */
struct message {
  union {
    struct nlmsghdr nlh;
    char buf[256];
  };
};

static void begin(struct message *m, uint8_t type, uint16_t flags) {
  memset(m, 0, sizeof(*m));
  m->nlh.nlmsg_len = NLMSG_LENGTH(sizeof(struct nfgenmsg));
  m->nlh.nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | type;
  m->nlh.nlmsg_flags = NLM_F_REQUEST | flags;
  struct nfgenmsg *g = NLMSG_DATA(&m->nlh);
  g->nfgen_family = AF_UNSPEC;
  g->version = NFNETLINK_V0;
  g->res_id = htons(queue);
}

static void put(struct message *m, uint16_t type, const void *data, uint16_t len) {
  struct nlattr *a = (struct nlattr *)(m->buf + NLMSG_ALIGN(m->nlh.nlmsg_len));
  a->nla_type = type;
  a->nla_len = NLA_HDRLEN + len;
  memcpy((char *)a + NLA_HDRLEN, data, len);
  m->nlh.nlmsg_len = NLMSG_ALIGN(m->nlh.nlmsg_len) + NLA_ALIGN(a->nla_len);
}

static void die(const char *what, int err) {
  fprintf(stderr, "pathtrace-nfq: %s: %s\n", what, strerror(err));
  exit(1);
}

/** Sends a configuration message and waits for the kernel's answer to it. */
static void configure(struct message *m, const char *what) {
  if (send(fd, m, m->nlh.nlmsg_len, 0) < 0) die(what, errno);
  char buf[512];
  ssize_t n = recv(fd, buf, sizeof(buf), 0);
  if (n < 0) die(what, errno);
  struct nlmsghdr *h = (struct nlmsghdr *)buf;
  if (h->nlmsg_type == NLMSG_ERROR) {
    int err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
    if (err) die(what, -err);
  }
}

static void verdict(uint32_t id, uint32_t v) {
  struct message m;
  begin(&m, NFQNL_MSG_VERDICT, 0);
  struct nfqnl_msg_verdict_hdr vh = {.verdict = htonl(v), .id = htonl(id)};
  put(&m, NFQA_VERDICT_HDR, &vh, sizeof(vh));
  if (send(fd, &m, m.nlh.nlmsg_len, 0) < 0) die("verdict", errno);
}

/** The packet id of a queued packet's message, 0 when it has none. */
static uint32_t packet_id(struct nlmsghdr *h) {
  int len = h->nlmsg_len - NLMSG_LENGTH(sizeof(struct nfgenmsg));
  struct nlattr *a = (struct nlattr *)((char *)NLMSG_DATA(h) + NLMSG_ALIGN(sizeof(struct nfgenmsg)));
  while (len >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= len) {
    if ((a->nla_type & NLA_TYPE_MASK) == NFQA_PACKET_HDR)
      return ntohl(((struct nfqnl_msg_packet_hdr *)((char *)a + NLA_HDRLEN))->packet_id);
    len -= NLA_ALIGN(a->nla_len);
    a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len));
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: pathtrace-nfq QUEUE accept|drop|hold [maxlen N] [fail-open]\n");
    return 2;
  }
  queue = (uint16_t)atoi(argv[1]);
  const char *mode = argv[2];
  int hold = !strcmp(mode, "hold");
  uint32_t v = !strcmp(mode, "accept") ? NF_ACCEPT : NF_DROP;
  if (!hold && strcmp(mode, "accept") && strcmp(mode, "drop")) {
    fprintf(stderr, "pathtrace-nfq: verdict %s: accept, drop or hold\n", mode);
    return 2;
  }
  uint32_t maxlen = 0, flags = 0;
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "maxlen") && i + 1 < argc)
      maxlen = (uint32_t)atoi(argv[++i]);
    else if (!strcmp(argv[i], "fail-open"))
      flags |= NFQA_CFG_F_FAIL_OPEN;
    else {
      fprintf(stderr, "pathtrace-nfq: unknown option %s\n", argv[i]);
      return 2;
    }
  }

  fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) die("socket", errno);
  struct sockaddr_nl local = {.nl_family = AF_NETLINK};
  socklen_t len = sizeof(local);
  if (bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0 || getsockname(fd, (struct sockaddr *)&local, &len) < 0)
    die("bind", errno);

  struct message m;
  begin(&m, NFQNL_MSG_CONFIG, NLM_F_ACK);
  struct nfqnl_msg_config_cmd cmd = {.command = NFQNL_CFG_CMD_BIND};
  put(&m, NFQA_CFG_CMD, &cmd, sizeof(cmd));
  configure(&m, "bind the queue");
  // Metadata only: the packet id is all a verdict needs.
  begin(&m, NFQNL_MSG_CONFIG, NLM_F_ACK);
  struct nfqnl_msg_config_params params = {.copy_range = htonl(0), .copy_mode = NFQNL_COPY_META};
  put(&m, NFQA_CFG_PARAMS, &params, sizeof(params));
  if (maxlen) {
    uint32_t be = htonl(maxlen);
    put(&m, NFQA_CFG_QUEUE_MAXLEN, &be, sizeof(be));
  }
  if (flags) {
    uint32_t be = htonl(flags);
    put(&m, NFQA_CFG_FLAGS, &be, sizeof(be));
    put(&m, NFQA_CFG_MASK, &be, sizeof(be));
  }
  configure(&m, "configure the queue");
  printf("{\"queue\":%u,\"portid\":%u,\"pid\":%d}\n", queue, local.nl_pid, getpid());
  fflush(stdout);

  static char buf[65536];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR || errno == ENOBUFS) continue;  // ENOBUFS: the kernel dropped messages for us
      die("recv", errno);
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type != ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) continue;
      uint32_t id = packet_id(h);
      if (hold || !id) continue;
      verdict(id, v);
      printf("{\"id\":%u,\"verdict\":\"%s\"}\n", id, mode);
      fflush(stdout);
    }
  }
}
