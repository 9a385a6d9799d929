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
 *   K               the reconnect storm starts now (the loadgen SIGKILLs the first gateway)
 *   P               -> "P <storm clients resumed> <storm clients> <ms since K>"
 * and it writes "READY <ok> <failed>" once every client is subscribed (or failed).
 *
 * Storm mode (6th argument "OBSERVERS,MIN_MS,JITTER_MS[,TOKENS_FILE]"): the first N-OBSERVERS
 * clients connect to the first port, the observers to the second. Every client keeps the id of
 * the last event it saw; when its connection drops it waits MIN_MS plus a random share of
 * JITTER_MS (doubling, capped at 5 s, on each failed attempt, as socket.io-client backs off),
 * reconnects to the second port and subscribes with `lastEventId` (ack id 1). Events that
 * arrive before that ack are the replay; latency counts only live events. Observers' latency
 * between K and the last resume is the surviving replica's latency during the storm. With a
 * TOKENS_FILE, client i connects with `?token=` line i (distinct subjects, auth on).
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
  double last_seq, last_global;
  uint32_t recv, dup;
  double gaps;
  int probe_seen;
  int stalled;
  /* storm mode */
  char last_id[48];
  int observer, reconnects, attempts, awaiting_ack, resumed, recovered_false;
  double reconnect_at, resumed_ms, replayed;
  double t_open, t_upgraded, t_greeted; /* the last reconnect's phases, ms since K */
} client_t;

static client_t *C;
static int N, S, all_mode, concurrency = 200;
static int nports, ports[64];
static const char *path = "/ws/events";
static int ep, measuring, started, done_conn, ok_conn, failed_conn;
static double *lat;
static size_t lat_n, lat_cap;
static double delivered, stray, bad, offset_ms, last_recv, first_recv, global_ooo;
static double *serial_last; /* all mode: per client and serial, the last bsseq seen */
static uint32_t unexpected;
static int stalled_n;
/* storm mode */
static int storm, observers, storm_min_ms, storm_jitter_ms, storm_phase, storm_resumed, storm_clients;
static double storm_t0, storm_t1, *lat_obs, replayed_total;
static size_t lat_obs_n, lat_obs_cap;
static char **tokens;
static int ntokens;
static long reconnect_attempts, ack_not_ok;

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
static void open_socket(client_t *c);

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
    if (storm) {
      c->observer = started >= N - observers;
      c->port = ports[c->observer && nports > 1 ? 1 : 0];
    } else {
      c->port = ports[started % nports];
    }
    c->last_seq = -1;
    c->last_global = -1;
    started++;
    open_socket(c);
  }
}


static void open_socket(client_t *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(c->port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  connect(c->fd, (struct sockaddr *)&a, sizeof a);
  c->state = 0;
  c->len = 0;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* socket.io-client's backoff: min * 2^attempt, capped at 5 s, with a random share of jitter */
static void schedule_reconnect(client_t *c) {
  double base = storm_min_ms * (double)(1 << (c->attempts < 6 ? c->attempts : 6));
  if (base > 5000) base = 5000;
  c->reconnect_at = now_ms() + base + (double)rand() / RAND_MAX * storm_jitter_ms;
  c->attempts++;
  c->state = 13;
}

static void reconnect_due(void) {
  double t = now_ms();
  for (int i = 0; i < N; i++) {
    client_t *c = &C[i];
    if (c->state != 13 || c->reconnect_at > t) continue;
    c->port = ports[nports > 1 ? 1 : 0];
    c->reconnects++;
    c->t_open = now_ms() - storm_t0;
    reconnect_attempts++;
    open_socket(c);
  }
}

static void lost_connection(client_t *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  if (storm && storm_phase && !c->observer && !c->stalled) schedule_reconnect(c);
  else c->state = 12;
}

static void on_ack(client_t *c, const char *p, size_t n) {
  if (!c->awaiting_ack) return;
  c->awaiting_ack = 0;
  if (!memmem(p, n, "\"ok\":true", 9)) { ack_not_ok++; fprintf(stderr, "client %ld ack: %.*s\n", (long)(c - C), (int)(n > 200 ? 200 : n), p); }
  if (!c->reconnects) return; /* the first subscribe's ack */
  if (memmem(p, n, "\"recovered\":false", 17)) c->recovered_false = 1;
  if (!c->resumed) {
    c->resumed = 1;
    c->resumed_ms = now_ms() - storm_t0;
    if (++storm_resumed == storm_clients && storm_phase == 1) { storm_phase = 2; storm_t1 = now_ms(); }
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
  if (n >= 3 && p[0] == '4' && p[1] == '3' && p[2] == '1') { on_ack(c, p, n); return; }
  if (n < 2 || p[0] != '4' || p[1] != '2') return;
  static const char ev[] = "42[\"drone:event\",";
  if (n < sizeof ev - 1 || memcmp(p, ev, sizeof ev - 1) != 0) {
    if (n > 15 && memcmp(p, "42[\"connected\"", 14) == 0 && c->state < 10) {
      char sub[256], target[64], resume[96] = "";
      if (all_mode) snprintf(target, sizeof target, "\"all\":true");
      else snprintf(target, sizeof target, "\"droneSerial\":\"SN%05d\"", c->serial);
      if (c->reconnects && c->last_id[0]) snprintf(resume, sizeof resume, ",\"lastEventId\":\"%s\"", c->last_id);
      if (c->reconnects) c->t_greeted = now_ms() - storm_t0;
      /* with an ack id (1) in storm mode: the ack marks the end of the replay */
      snprintf(sub, sizeof sub, "42%s[\"subscribe\",{%s%s}]", storm ? "1" : "", target, resume);
      send_text(c, sub);
      if (storm) c->awaiting_ack = 1;
      if (c->reconnects) { c->state = 10; c->attempts = 0; }
      else conn_done(c, 1);
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
  if (storm) { /* the envelope's id: 42["drone:event",{"id":"<id>", */
    const char *k = memmem(p, n, "{\"id\":\"", 7);
    if (k) {
      k += 7;
      size_t m = 0;
      while (k + m < p + n && k[m] != '"' && m < sizeof c->last_id - 1) m++;
      memcpy(c->last_id, k, m); c->last_id[m] = 0;
    }
  }
  if (!measuring) { stray++; return; }
  /* The promise is per drone: each drone's events in order (bsseq). In all mode the client also
   * counts inversions of the global publish order (bseq), which one Redis keeps and a cluster
   * (one order per shard) does not: informational. */
  double s = num_after(p, n, "\"bsseq\":", &f3);
  double *last = &c->last_seq;
  if (all_mode) {
    int f4; int si = (int)num_after(p, n, "\"serial\":\"SN", &f4);
    if (f4 && si >= 0 && si < S) last = &serial_last[(size_t)(c - C) * S + si];
    if (bseq < c->last_global) global_ooo++; else c->last_global = bseq;
  }
  double expect = *last + 1;
  if (s == expect) *last = s;
  else if (s > expect) { c->gaps += s - expect; *last = s; }
  else c->dup++;
  c->recv++;
  delivered++;
  if (first_recv == 0) first_recv = t;
  last_recv = t;
  if (c->awaiting_ack) { c->replayed++; replayed_total++; return; } /* replay: not live latency */
  if (storm && c->observer && storm_phase == 1) {
    if (lat_obs_n == lat_obs_cap) { lat_obs_cap = lat_obs_cap ? lat_obs_cap * 2 : (1 << 16); lat_obs = realloc(lat_obs, lat_obs_cap * sizeof *lat_obs); }
    lat_obs[lat_obs_n++] = t - bts;
  }
  if (lat_n == lat_cap) { lat_cap = lat_cap ? lat_cap * 2 : (1 << 20); lat = realloc(lat, lat_cap * sizeof *lat); }
  lat[lat_n++] = t - bts;
}

static void on_readable(client_t *c) {
  for (;;) {
    if (c->cap - c->len < 65536) { c->cap = c->cap ? c->cap * 2 : 131072; c->buf = realloc(c->buf, c->cap); }
    ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
      if (c->state == 10 && !c->stalled) unexpected++;
      else if (!c->reconnects) conn_done(c, 0);
      lost_connection(c);
      return;
    }
    if (r < 0) break;
    c->len += (size_t)r;
    size_t p = 0;
    if (c->state == 1) {
      char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
      if (!e) continue;
      if (memcmp(c->buf, "HTTP/1.1 101", 12) != 0) {
        if (c->reconnects) { lost_connection(c); return; }
        conn_done(c, 0); return;
      }
      p = (size_t)(e - c->buf) + 4;
      c->state = 2;
      if (c->reconnects) c->t_upgraded = now_ms() - storm_t0;
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
         "\"c_stray\":%.0f,\"c_bad\":%.0f,\"c_stalled\":%d,\"c_global_ooo\":%.0f",
         okc, expected, delivered, lost, with_loss, gaps, dups, pct(0.5), pct(0.9), pct(0.99), pct(0.999),
         lat_n ? lat[lat_n - 1] : -1, lat_n ? sum / lat_n : -1, first_recv, last_recv, unexpected, stray, bad, stalled_n, global_ooo);
  if (storm) {
    double *rt = calloc((size_t)N + 1, sizeof *rt); int nr = 0, recovered_false = 0, never = 0;
    double *ph[3]; for (int k = 0; k < 3; k++) ph[k] = calloc((size_t)N + 1, sizeof(double));
    for (int i = 0; i < N; i++) {
      if (C[i].observer) continue;
      if (C[i].resumed) {
        /* phases: waiting to reconnect + TCP/HTTP upgrade, engine.io/Socket.IO connect, subscribe+replay */
        ph[0][nr] = C[i].t_upgraded; ph[1][nr] = C[i].t_greeted - C[i].t_upgraded; ph[2][nr] = C[i].resumed_ms - C[i].t_greeted;
        rt[nr++] = C[i].resumed_ms;
      } else never++;
      recovered_false += C[i].recovered_false;
    }
    qsort(rt, (size_t)nr, sizeof *rt, cmp);
    for (int k = 0; k < 3; k++) qsort(ph[k], (size_t)nr, sizeof(double), cmp);
    fprintf(stderr, "storm phases p50/p99 ms: upgraded %.0f/%.0f, greeted after %.0f/%.0f, acked after %.0f/%.0f\n",
            nr ? ph[0][nr / 2] : -1, nr ? ph[0][(size_t)(0.99 * (nr - 1))] : -1, nr ? ph[1][nr / 2] : -1,
            nr ? ph[1][(size_t)(0.99 * (nr - 1))] : -1, nr ? ph[2][nr / 2] : -1, nr ? ph[2][(size_t)(0.99 * (nr - 1))] : -1);
    for (int k = 0; k < 3; k++) free(ph[k]);
    qsort(lat_obs, lat_obs_n, sizeof *lat_obs, cmp);
#define OBS(q) (lat_obs_n ? lat_obs[(size_t)((q) * (lat_obs_n - 1))] : -1)
    printf(",\"c_storm_clients\":%d,\"c_resumed\":%d,\"c_never_resumed\":%d,\"c_resume_p50_ms\":%.1f,"
           "\"c_resume_p99_ms\":%.1f,\"c_resume_max_ms\":%.1f,\"c_all_resumed_ms\":%.1f,\"c_recovered_false\":%d,"
           "\"c_ack_not_ok\":%ld,\"c_reconnect_attempts\":%ld,\"c_replayed\":%.0f,\"c_observers\":%d,"
           "\"c_obs_storm_n\":%zu,\"c_obs_storm_p50\":%.3f,\"c_obs_storm_p99\":%.3f,\"c_obs_storm_max\":%.3f}\n",
           storm_clients, nr, never, nr ? rt[(size_t)(0.5 * (nr - 1))] : -1, nr ? rt[(size_t)(0.99 * (nr - 1))] : -1,
           nr ? rt[nr - 1] : -1, storm_t1 ? storm_t1 - storm_t0 : -1, recovered_false, ack_not_ok, reconnect_attempts,
           replayed_total, observers, lat_obs_n, OBS(0.5), OBS(0.99), lat_obs_n ? lat_obs[lat_obs_n - 1] : -1);
    free(rt);
  } else {
    printf("}\n");
  }
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
  case 'K': storm_t0 = now_ms(); storm_phase = 1; break;
  case 'P': printf("P %d %d %.1f\n", storm_resumed, storm_clients, storm_phase ? now_ms() - storm_t0 : -1); fflush(stdout); break;
  case 'X': exit(0);
  }
}

int main(int argc, char **argv) {
  if (argc < 6) { fprintf(stderr, "usage: creceiver PORTS(comma) PATH N all|targeted SERIALS\n"); return 2; }
  for (char *t = strtok(argv[1], ","); t && nports < 64; t = strtok(NULL, ",")) ports[nports++] = atoi(t);
  path = argv[2]; N = atoi(argv[3]); all_mode = strcmp(argv[4], "all") == 0; S = atoi(argv[5]);
  if (argc > 6) {
    char tokfile[1024] = "";
    storm = 1;
    sscanf(argv[6], "%d,%d,%d,%1023s", &observers, &storm_min_ms, &storm_jitter_ms, tokfile);
    storm_clients = N - observers;
    srand((unsigned)getpid());
    if (tokfile[0]) {
      FILE *f = fopen(tokfile, "r");
      if (!f) { perror(tokfile); return 2; }
      tokens = calloc((size_t)N, sizeof *tokens);
      char line[2048];
      while (ntokens < N && fgets(line, sizeof line, f)) { line[strcspn(line, "\r\n")] = 0; tokens[ntokens++] = strdup(line); }
      fclose(f);
    }
  }
  C = calloc((size_t)N, sizeof *C);
  if (all_mode) {
    serial_last = malloc((size_t)N * (size_t)S * sizeof *serial_last);
    for (size_t i = 0; i < (size_t)N * (size_t)S; i++) serial_last[i] = -1;
  }
  ep = epoll_create1(0);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  struct epoll_event sev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev);
  start_one();
  static char inbuf[1 << 20]; size_t inlen = 0;
  struct epoll_event evs[512];
  for (;;) {
    int n = epoll_wait(ep, evs, 512, storm_phase ? 5 : 1000);
    if (storm_phase) reconnect_due();
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
        if (err) {
          if (c->reconnects) { lost_connection(c); continue; }
          conn_done(c, 0); close(c->fd); continue;
        }
        char req[2560];
        long idx = (long)(c - C);
        int m = snprintf(req, sizeof req,
                         "GET %s/?EIO=4&transport=websocket%s%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                         "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                         path, idx < ntokens ? "&token=" : "", idx < ntokens ? tokens[idx] : "", c->port);
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
