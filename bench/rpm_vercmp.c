/* Times librpm's EVR comparison (rpmverParse + rpmverCmp, as rpm's own Lua rpm.vercmp does) over a
 * pairs file, in-process; only the parse-and-compare loop is timed. Build: see bench/vercmp.sh. */
#include <rpm/rpmver.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
  FILE *f = fopen(argv[1], "r");
  size_t cap = 1 << 20, n = 0;
  char **a = malloc(cap * sizeof *a), **b = malloc(cap * sizeof *b);
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *tab = strchr(line, '\t');
    *tab = 0;
    if (n == cap) { cap *= 2; a = realloc(a, cap * sizeof *a); b = realloc(b, cap * sizeof *b); }
    a[n] = strdup(line); b[n] = strdup(tab + 1); n++;
  }
  struct timespec t0, t1;
  long sum = 0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (size_t i = 0; i < n; i++) {
    rpmver va = rpmverParse(a[i]), vb = rpmverParse(b[i]);
    sum += rpmverCmp(va, vb);
    rpmverFree(va); rpmverFree(vb);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("librpm rpmverParse+rpmverCmp (C): %zu pairs in %.3f s = %.2f M comparisons/s (checksum %ld)\n", n, s, n / s / 1e6, sum);
  return 0;
}
