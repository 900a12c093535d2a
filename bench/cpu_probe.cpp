// Measures how steady this machine's CPU is: runs a fixed unit of work (memory copies and integer
// arithmetic, about half a millisecond) back to back on the core it is pinned to, and reports how often a 50 ms
// window ran slower than the median. A virtual machine whose host takes the core away (without it
// showing as steal time) slows every server on it at once; a latency tail that lines up with such
// windows is the machine's, and the server's share of it is how close to saturation it runs.
//   taskset -c 0 cpu_probe [--seconds 10] [--json FILE]
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

uint64_t unitOfWork(std::vector<char>& from, std::vector<char>& to, int round) {
  uint64_t x = static_cast<uint64_t>(round);
  for (int r = 0; r < 16; ++r) {
    std::size_t offset = (static_cast<std::size_t>(r + round) * 4096) % (from.size() / 2);
    std::memcpy(to.data(), from.data() + offset, 64 * 1024);
    for (int i = 0; i < 20000; ++i) x = x * 6364136223846793005ULL + static_cast<uint64_t>(i) + to[i % 4096];
  }
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CPU steadiness probe"};
  double seconds = 10;
  std::string json_out;
  app.add_option("--seconds", seconds);
  app.add_option("--json", json_out, "append a JSON line with the results to this file");
  CLI11_PARSE(app, argc, argv);

  std::vector<char> from(1 << 20, 1), to(64 * 1024);
  std::vector<std::pair<double, double>> units;  // start (s since t0), duration (µs)
  volatile uint64_t sink = 0;
  auto t0 = Clock::now();
  auto end = t0 + std::chrono::duration<double>(seconds);
  for (int round = 0; Clock::now() < end; ++round) {
    auto s = Clock::now();
    sink = sink + unitOfWork(from, to, round);
    auto e = Clock::now();
    units.emplace_back(std::chrono::duration<double>(s - t0).count(),
                       std::chrono::duration<double, std::micro>(e - s).count());
  }
  std::vector<double> d;
  d.reserve(units.size());
  for (const auto& u : units) d.push_back(u.second);
  std::sort(d.begin(), d.end());
  double median = d[d.size() / 2];

  // 50 ms windows: the mean unit time in each, as a multiple of the median.
  std::vector<double> ratios;
  double window_sum = 0;
  int window_n = 0;
  double window_end = 0.05;
  for (const auto& [start, us] : units) {
    if (start >= window_end && window_n > 0) {
      ratios.push_back(window_sum / window_n / median);
      window_sum = 0;
      window_n = 0;
      window_end += 0.05;
    }
    window_sum += us;
    ++window_n;
  }
  auto count_over = [&](double r) {
    return std::count_if(ratios.begin(), ratios.end(), [&](double x) { return x > r; });
  };
  double worst = ratios.empty() ? 0 : *std::max_element(ratios.begin(), ratios.end());
  std::printf(
      "unit of work: median %.1f us; %zu windows of 50 ms: %ld over 1.5x the median, %ld over 2x, worst %.2fx\n",
      median, ratios.size(), count_over(1.5), count_over(2.0), worst);
  std::string json = fmt::format(R"({{"mode":"cpu_probe","seconds":{:.1f},"unit_median_us":{:.1f},"windows":{},)"
                                 R"("windows_over_1_5x":{},"windows_over_2x":{},"worst_ratio":{:.2f}}})",
                                 seconds, median, ratios.size(), count_over(1.5), count_over(2.0), worst);
  std::printf("%s\n", json.c_str());
  if (!json_out.empty()) std::ofstream(json_out, std::ios::app) << json << "\n";
  return sink == 42 ? 1 : 0;  // keeps the work from being optimised away
}
