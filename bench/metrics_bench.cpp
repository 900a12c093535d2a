// What metrics cost on the delivery path (issue 6). Per delivered event, Delivery adds one
// Histogram::observe() (the latency histogram) to the relaxed counter increments it already did;
// everything else is read at scrape time. These measure that work, to set beside the CPU per
// delivered event measured by `loadgen --mode chat` in the same run (bench/metrics-figures.sh).
//
//   build/metrics_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include "monitoring/histogram.hpp"
#include "monitoring/metrics.hpp"

#include <benchmark/benchmark.h>

#include <atomic>

namespace {

using agentwire::monitoring::Family;
using agentwire::monitoring::Histogram;
using agentwire::monitoring::MetricsEndpoint;

Histogram& shared() {
  static Histogram h(Histogram::latencyBounds());
  return h;
}

void BM_HistogramObserve(benchmark::State& state) {
  double v = 0.0001 * (state.thread_index() + 1);
  for (auto _ : state) {
    shared().observe(v);
    v = v < 5 ? v * 1.7 : 0.0001;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HistogramObserve)->Threads(1)->Threads(2);

std::atomic<uint64_t> counter{0};
void BM_CounterIncrement(benchmark::State& state) {
  for (auto _ : state) counter.fetch_add(1, std::memory_order_relaxed);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CounterIncrement)->Threads(1)->Threads(2);

// A scrape of a /metrics page of the size the server serves (about 60 families, 3 histograms).
void BM_Scrape(benchmark::State& state) {
  MetricsEndpoint m;
  agentwire::monitoring::addProcessMetrics(m);
  m.addSource([](std::vector<Family>& out) {
    for (int i = 0; i < 50; ++i) {
      out.emplace_back("agentwire_series_" + std::to_string(i) + "_total", "help", Family::Type::Counter);
      out.back().add(i, {{"component", "c" + std::to_string(i % 9)}});
    }
    for (int i = 0; i < 3; ++i) {
      out.emplace_back("agentwire_hist_" + std::to_string(i) + "_seconds", "help", Family::Type::Histogram);
      out.back().addHistogram(shared().snapshot());
    }
  });
  for (auto _ : state) benchmark::DoNotOptimize(m.scrape());
}
BENCHMARK(BM_Scrape)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
