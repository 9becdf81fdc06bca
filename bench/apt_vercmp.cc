// Times libapt-pkg's Debian version comparison (debVS.CmpVersion, what apt and apt_pkg use) over a
// pairs file, in-process; only the comparison loop is timed. Build: see bench/vercmp.sh.
#include <apt-pkg/debversion.h>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

int main(int argc, char **argv) {
  std::ifstream in(argv[1]);
  std::vector<std::pair<std::string, std::string>> pairs;
  for (std::string line; std::getline(in, line);) {
    auto tab = line.find('\t');
    pairs.emplace_back(line.substr(0, tab), line.substr(tab + 1));
  }
  long sum = 0;
  auto start = std::chrono::steady_clock::now();
  for (auto &p : pairs) sum += debVS.CmpVersion(p.first, p.second) < 0 ? -1 : 1;
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("libapt-pkg debVS.CmpVersion (C++): %zu pairs in %.3f s = %.2f M comparisons/s (checksum %ld)\n",
              pairs.size(), s, pairs.size() / s / 1e6, sum);
}
