/* The receiving side of the load generator in C (--client c): N Socket.IO clients on one
 * epoll loop. Measurement harness only.
 *
 * Each client speaks the same wire protocol as socket.io-client over WebSocket: HTTP upgrade,
 * engine.io v4 OPEN, Socket.IO CONNECT ("40"), `subscribe` emit once `connected` arrives,
 * engine.io PING -> PONG, WebSocket ping -> pong. For `drone:event` frames it reads bseq, bsseq,
 * bts (and bprobe for probes) out of the frame and keeps the loadgen's counters: received,
 * sequence gaps, duplicates/out-of-order, latency (receive time minus bts).
 *
 * loadgen.js starts it, publishes, and talks to it over stdin/stdout, one line each:
 *   T               -> "T <this process's CLOCK_REALTIME in ms>" (the loadgen measures the
 *                   offset between its clock and this one from round trips)
 *   O <ms>          the offset to subtract from this clock
 *   Q <round>       -> "S <round> <clients that saw probe round>"
 *   M <0|1>         stop / start measuring
 *   D               -> "D <delivered> <ms since last delivery>"
 *   Z <k>           the last k clients stop reading (slow consumers, with a small receive
 *                   buffer): they are left out of the loss counts (bench/run.py reads the
 *                   gateway's slow-client disconnect counter)
 *   R <total> <per-serial counts, comma separated>  -> one JSON line of results
 * and it writes "READY <ok> <failed>" once every client is subscribed (or failed).
 *
 * Build: cc -O2 -o creceiver creceiver.c  (bench/run.py does it; falls back to --client tcp)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  int fd, state, serial, port;
  char *buf;
  size_t len, cap;
  double last_seq;
  uint32_t recv, dup;
  double gaps;
  int probe_seen;
  int stalled;
} client_t;

static client_t *C;
static int N, S, all_mode, concurrency = 200;
static int nports, ports[64];
static const char *path = "/ws/events";
static int ep, measuring, started, done_conn, ok_conn, failed_conn;
static double *lat;
static size_t lat_n, lat_cap;
static double delivered, stray, bad, offset_ms, last_recv, first_recv;
static uint32_t unexpected;
static int stalled_n;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6 - offset_ms;
}

static void wr(client_t *c, const char *d, size_t n) {
  while (n) {
    ssize_t w = write(c->fd, d, n);
    if (w < 0) { if (errno == EINTR) continue; return; }
    d += w; n -= (size_t)w;
  }
}

static void send_text(client_t *c, const char *text) { /* masked with a zero key */
  size_t n = strlen(text);
  char f[512];
  f[0] = (char)0x81; f[1] = (char)(0x80 | n);
  memset(f + 2, 0, 4);
  memcpy(f + 6, text, n);
  wr(c, f, n + 6);
}

static void start_one(void);

static void conn_done(client_t *c, int ok) {
  if (c->state >= 10) return;
  c->state = ok ? 10 : 11;
  done_conn++;
  if (ok) ok_conn++; else failed_conn++;
  if (done_conn == N) { printf("READY %d %d\n", ok_conn, failed_conn); fflush(stdout); }
  start_one();
}

static void start_one(void) {
  while (started < N && started - done_conn < concurrency) {
    client_t *c = &C[started];
    c->serial = all_mode ? 0 : started % S;
    c->port = ports[started % nports];
    c->last_seq = -1;
    started++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(c->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    connect(c->fd, (struct sockaddr *)&a, sizeof a);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  }
}

static double num_after(const char *p, size_t n, const char *key, int *found) {
  const char *k = memmem(p, n, key, strlen(key));
  if (!k) { *found = 0; return 0; }
  *found = 1;
  return strtod(k + strlen(key), NULL);
}

static void on_text(client_t *c, const char *p, size_t n) {
  if (n == 1 && p[0] == '2') { send_text(c, "3"); return; }
  if (n < 2 || p[0] != '4' || p[1] != '2') return;
  static const char ev[] = "42[\"drone:event\",";
  if (n < sizeof ev - 1 || memcmp(p, ev, sizeof ev - 1) != 0) {
    if (n > 15 && memcmp(p, "42[\"connected\"", 14) == 0 && c->state < 10) {
      char sub[128];
      if (all_mode) snprintf(sub, sizeof sub, "42[\"subscribe\",{\"all\":true}]");
      else snprintf(sub, sizeof sub, "42[\"subscribe\",{\"droneSerial\":\"SN%05d\"}]", c->serial);
      send_text(c, sub);
      conn_done(c, 1);
    } else if (n > 10 && memcmp(p, "42[\"error\"", 10) == 0) {
      fprintf(stderr, "client %ld error: %.*s\n", (long)(c - C), (int)(n > 200 ? 200 : n), p);
    }
    return;
  }
  double t = now_ms();
  int f1, f2, f3;
  double bts = num_after(p, n, "\"bts\":", &f1);
  double bseq = num_after(p, n, "\"bseq\":", &f2);
  if (!f1 || !f2) { bad++; return; }
  if (bseq < 0) {
    double round = num_after(p, n, "\"bprobe\":", &f3);
    if (f3 && (int)round > c->probe_seen) c->probe_seen = (int)round;
    return;
  }
  if (!measuring) { stray++; return; }
  double s = all_mode ? bseq : num_after(p, n, "\"bsseq\":", &f3);
  double expect = c->last_seq + 1;
  if (s == expect) c->last_seq = s;
  else if (s > expect) { c->gaps += s - expect; c->last_seq = s; }
  else c->dup++;
  c->recv++;
  delivered++;
  if (first_recv == 0) first_recv = t;
  last_recv = t;
  if (lat_n == lat_cap) { lat_cap = lat_cap ? lat_cap * 2 : (1 << 20); lat = realloc(lat, lat_cap * sizeof *lat); }
  lat[lat_n++] = t - bts;
}

static void on_readable(client_t *c) {
  for (;;) {
    if (c->cap - c->len < 65536) { c->cap = c->cap ? c->cap * 2 : 131072; c->buf = realloc(c->buf, c->cap); }
    ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
      if (c->state == 10 && !measuring) {}
      if (c->state == 10 && !c->stalled) unexpected++;
      else conn_done(c, 0);
      epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
      close(c->fd);
      c->state = 12;
      return;
    }
    if (r < 0) break;
    c->len += (size_t)r;
    size_t p = 0;
    if (c->state == 1) {
      char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
      if (!e) continue;
      if (memcmp(c->buf, "HTTP/1.1 101", 12) != 0) { conn_done(c, 0); return; }
      p = (size_t)(e - c->buf) + 4;
      c->state = 2;
      send_text(c, "40");
    }
    while (c->len - p >= 2) {
      unsigned char *b = (unsigned char *)c->buf + p;
      size_t h = 2, n = b[1] & 0x7f;
      if (n == 126) { if (c->len - p < 4) break; n = ((size_t)b[2] << 8) | b[3]; h = 4; }
      else if (n == 127) {
        if (c->len - p < 10) break;
        n = 0; for (int i = 0; i < 8; i++) n = (n << 8) | b[2 + i];
        h = 10;
      }
      if (c->len - p < h + n) break;
      int op = b[0] & 0x0f;
      if (op == 1) on_text(c, (char *)b + h, n);
      else if (op == 9) {
        char f[140]; size_t m = n > 125 ? 125 : n;
        f[0] = (char)0x8a; f[1] = (char)(0x80 | m); memset(f + 2, 0, 4); memcpy(f + 6, b + h, m);
        wr(c, f, m + 6);
      }
      p += h + n;
    }
    memmove(c->buf, c->buf + p, c->len - p);
    c->len -= p;
  }
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double pct(double q) { return lat_n ? lat[(size_t)(q * (lat_n - 1))] : -1; }

static void report(char *args) {
  double total = strtod(args, &args);
  double per[100000]; int ns = 0;
  while (*args && ns < 100000) { while (*args == ' ' || *args == ',') args++; if (!*args || *args == '\n') break; per[ns++] = strtod(args, &args); }
  double expected = 0, lost = 0, gaps = 0, dups = 0; int with_loss = 0, okc = 0;
  for (int i = 0; i < N; i++) {
    client_t *c = &C[i];
    if (c->stalled) continue;
    if (c->state != 10 && c->recv == 0) continue;
    okc += c->state == 10;
    double e = all_mode ? total : (c->serial < ns ? per[c->serial] : 0);
    expected += e;
    double miss = e - c->recv; if (miss > 0) { lost += miss; with_loss++; }
    gaps += c->gaps; dups += c->dup;
  }
  qsort(lat, lat_n, sizeof *lat, cmp);
  double sum = 0; for (size_t i = 0; i < lat_n; i++) sum += lat[i];
  printf("{\"c_connected\":%d,\"c_expected\":%.0f,\"c_delivered\":%.0f,\"c_lost\":%.0f,\"c_clients_with_loss\":%d,"
         "\"c_seq_gaps\":%.0f,\"c_dup_or_ooo\":%.0f,\"c_p50\":%.3f,\"c_p90\":%.3f,\"c_p99\":%.3f,\"c_p999\":%.3f,"
         "\"c_max\":%.3f,\"c_mean\":%.3f,\"c_first_recv\":%.3f,\"c_last_recv\":%.3f,\"c_unexpected\":%u,"
         "\"c_stray\":%.0f,\"c_bad\":%.0f,\"c_stalled\":%d}\n",
         okc, expected, delivered, lost, with_loss, gaps, dups, pct(0.5), pct(0.9), pct(0.99), pct(0.999),
         lat_n ? lat[lat_n - 1] : -1, lat_n ? sum / lat_n : -1, first_recv, last_recv, unexpected, stray, bad, stalled_n);
  fflush(stdout);
}

static void on_command(char *line) {
  switch (line[0]) {
  case 'T': { struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts);
      printf("T %.6f\n", ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6); fflush(stdout); break; }
  case 'O': offset_ms = strtod(line + 2, NULL); break;
  case 'Q': { int r = atoi(line + 2), seen = 0;
      for (int i = 0; i < N; i++) seen += C[i].state == 10 && C[i].probe_seen >= r;
      printf("S %d %d\n", r, seen); fflush(stdout); break; }
  case 'M': measuring = atoi(line + 2); break;
  case 'Z': { int k = atoi(line + 2);
      for (int i = N - 1; i >= 0 && stalled_n < k; i--) {
        if (C[i].state != 10) continue;
        C[i].stalled = 1; stalled_n++;
        epoll_ctl(ep, EPOLL_CTL_DEL, C[i].fd, NULL);
        int small = 4096; setsockopt(C[i].fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
      }
      break; }
  case 'D': printf("D %.0f %.3f\n", delivered, last_recv ? now_ms() - last_recv : -1); fflush(stdout); break;
  case 'R': report(line + 2); break;
  case 'X': exit(0);
  }
}

int main(int argc, char **argv) {
  if (argc < 6) { fprintf(stderr, "usage: creceiver PORTS(comma) PATH N all|targeted SERIALS\n"); return 2; }
  for (char *t = strtok(argv[1], ","); t && nports < 64; t = strtok(NULL, ",")) ports[nports++] = atoi(t);
  path = argv[2]; N = atoi(argv[3]); all_mode = strcmp(argv[4], "all") == 0; S = atoi(argv[5]);
  C = calloc((size_t)N, sizeof *C);
  ep = epoll_create1(0);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  struct epoll_event sev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev);
  start_one();
  static char inbuf[1 << 20]; size_t inlen = 0;
  struct epoll_event evs[512];
  for (;;) {
    int n = epoll_wait(ep, evs, 512, 1000);
    for (int i = 0; i < n; i++) {
      client_t *c = evs[i].data.ptr;
      if (!c) {
        ssize_t r = read(0, inbuf + inlen, sizeof inbuf - 1 - inlen);
        if (r == 0) return 0;
        if (r > 0) {
          inlen += (size_t)r; inbuf[inlen] = 0;
          char *s = inbuf, *e;
          while ((e = strchr(s, '\n'))) { *e = 0; on_command(s); s = e + 1; }
          inlen = strlen(s); memmove(inbuf, s, inlen);
        }
        continue;
      }
      if (c->state == 0 && (evs[i].events & EPOLLOUT)) {
        int err = 0; socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) { conn_done(c, 0); close(c->fd); continue; }
        char req[512];
        int m = snprintf(req, sizeof req,
                         "GET %s/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                         "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                         path, c->port);
        wr(c, req, (size_t)m);
        c->state = 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        continue;
      }
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
    }
  }
}
