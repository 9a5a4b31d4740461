// flightlog-bench-cold-pages: what touching memory costs right after a pause, on this
// machine, with no queue and no flightlog in the way.
//
// Why it exists: the burst method (bench-method.md) times 20 calls after a 2.0-2.2 ms
// busy wait. On some machines, virtual ones above all, that pause is long enough for the
// host to take the core's TLB and caches, and the first call after it then pays for every
// page and line it touches. How much it pays per page, and whether pages found through
// one another (a pointer read from one names the next) cost more than pages known up
// front, decides how far a hot path that touches a few more pages than the bare queue
// falls behind it in a burst average. This program measures exactly that.
//
// Method: one buffer, every page touched beforehand. Each case is a set of lines in
// distinct pages of their own (or in one page), read either as a chain (each line holds
// the address of the next: the loads are dependent, like client -> producer -> queue) or
// all at once (addresses computed up front: independent loads); one chain also has a
// line further down prefetched at the start, as a hot path does with an address it keeps
// beside the chain's first link. Each sample: the case's loads once (untimed), a pause,
// then the same loads timed with the TSC as the latency benchmark times a burst. Cases
// and pauses are drawn at random for every sample, so whatever the host does during the
// run falls on all of them alike. The short pause (50 us by default) is the control: the
// same loads when nothing had time to go cold.
//
// Page size: every case's lines sit on 4 KiB pages (madvise MADV_NOHUGEPAGE), except the
// cases marked "on one 2 MiB page", whose range asks for a transparent huge page
// (MADV_HUGEPAGE), as flightlog's HotArena does for the hot path's objects: the same
// chain of pages, found through one TLB entry instead of one per page. The output says
// how much of that range the kernel actually backed with huge pages.
#include <sys/mman.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common.hpp"

namespace fb = flightlog::bench;

namespace {

constexpr std::size_t kPage = 4096;
constexpr std::size_t kLine = 64;
// Each case's lines start this far apart from the next case's, so no two cases share a
// page (or a page-table page's worth of neighbours) and one cannot warm another.
constexpr std::size_t kCaseSpan = std::size_t{4} << 20;
// Pages of one case are this many pages apart: not adjacent, so a hardware prefetcher
// that follows a stream of lines or pages does not fetch the next one early.
constexpr std::size_t kPageStride = 17;

// Functions alone on a code page each, for the cases that start with a call: the one
// thing a library call does that an inlined queue operation does not is jump to code on
// another page. Two, so that the two cases calling them cannot warm each other's page.
[[gnu::noinline, gnu::aligned(4096)]] void far_code_a() noexcept {
  asm volatile("");
}
[[gnu::noinline, gnu::aligned(4096)]] void far_code_b() noexcept {
  asm volatile("");
}
// What the pause calls instead: near the timing code, kept warm by the pause itself.
[[gnu::noinline]] void near_code() noexcept {
  asm volatile("");
}

struct Case {
  std::string name;
  std::size_t lines = 0;              // loads per sample (0: none)
  bool same_page = false;             // all lines in one page, or one line in each of `lines` pages
  bool chained = false;               // each line names the next (dependent loads)
  void (*call)() noexcept = nullptr;  // called before the loads (nullptr: near_code)
  // >= 0: this line of the chain is prefetched before the chain starts, as a hot path
  // does with an address it keeps beside the chain's first link (a hint).
  int prefetched = -1;
  bool huge_page = false;  // the case's range asks for a 2 MiB page
  char* first = nullptr;   // set up in the buffer
  std::size_t stride = 0;  // bytes from one line to the next
};

// Prefetches `hint`, calls `call`, then reads `n` lines from `first`, `stride` bytes
// apart, as a chain or independently.
[[gnu::always_inline]] inline std::uintptr_t touch(const char* first, std::size_t stride,
                                                   std::size_t n, bool chained,
                                                   void (*call)() noexcept,
                                                   const char* hint) noexcept {
  __builtin_prefetch(hint);
  call();
  std::uintptr_t sink = 0;
  if (chained) {
    const char* p = first;
    for (std::size_t i = 0; i < n; ++i) p = *reinterpret_cast<const char* const volatile*>(p);
    sink = reinterpret_cast<std::uintptr_t>(p);
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      sink += reinterpret_cast<std::uintptr_t>(
          *reinterpret_cast<const char* const volatile*>(first + i * stride));
    }
  }
  return sink;
}

// One sample: touches the case's lines (untimed), busy-waits `pause_ticks`, then times
// touch() on the case again. So the pause is exactly how long the case's lines and pages
// sat unused, as in the burst method, where a burst's lines were last used by the one
// before it.
//
// The pause runs the very instructions it then times, on a line of its own stack frame
// that names itself (a chain over it stays on it) and with near_code() as the call, and
// only the last pass gets the case's addresses. So when the timed pass starts, its code,
// its branches and everything but the case's own lines and pages were in use a moment
// ago: what the sample shows is the cost of those alone.
[[gnu::noinline]] std::uint64_t sample(const Case& c, std::uint64_t pause_ticks,
                                       std::uintptr_t& sink) noexcept {
  alignas(64) const char* warm_line[8];
  warm_line[0] = reinterpret_cast<const char*>(&warm_line[0]);
  const char* const warm = reinterpret_cast<const char*>(&warm_line[0]);
  const char* const first = c.first;
  const std::size_t stride = c.stride;
  const std::size_t n = c.lines;
  const bool chained = c.chained;
  void (*const call)() noexcept = c.call != nullptr ? c.call : near_code;
  const char* const hint = c.prefetched >= 0 ? first + c.prefetched * stride : warm;
  sink += touch(first, stride, n, chained, call, hint);
  const std::uint64_t until = __rdtsc() + pause_ticks;
  for (;;) {
    const bool last = __rdtsc() >= until;
    const char* f = last ? first : warm;
    std::size_t s = last ? stride : 0;
    void (*fn)() noexcept = last ? call : near_code;
    const char* h = last ? hint : warm;
    asm volatile("" : "+r"(f), "+r"(s), "+r"(fn), "+r"(h));
    const std::uint64_t t0 = fb::tsc_begin();
    sink += touch(f, s, n, chained, fn, h);
    const std::uint64_t t1 = fb::tsc_end();
    if (last) return t1 - t0;
  }
}

// AnonHugePages of this process, in KiB: how much anonymous memory is on huge pages.
std::size_t anon_huge_kib() {
  std::ifstream in("/proc/self/smaps_rollup");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("AnonHugePages:", 0) == 0) return std::stoul(line.substr(14));
  }
  return 0;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  }
  return "unknown CPU";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"What touching memory costs right after a pause (TLB and cache misses alone)."};
  std::size_t samples = 20'000;
  double pause_us = 2'100;
  double short_pause_us = 50;
  int cpu = -1;
  std::string out_path;
  app.add_option("--samples", samples, "Samples over all cases and both pauses")
      ->check(CLI::Range(std::size_t{100}, std::size_t{10'000'000}))
      ->capture_default_str();
  app.add_option("--pause-us", pause_us,
                 "The long pause, centre of a +-100 us uniform draw (the burst method's)")
      ->check(CLI::Range(200.0, 100'000.0))
      ->capture_default_str();
  app.add_option("--short-pause-us", short_pause_us, "The control pause")
      ->check(CLI::Range(1.0, 1'000.0))
      ->capture_default_str();
  app.add_option("--cpu", cpu, "Pin the thread to this CPU (default: the scheduler places it)")
      ->check(CLI::Range(0, 1023));
  app.add_option("--out", out_path, "Also write the table to this Markdown file");
  CLI11_PARSE(app, argc, argv);

  if (cpu >= 0) fb::pin_to({static_cast<unsigned>(cpu)});

  std::vector<Case> cases{
      {"nothing (the timer alone)", 0, true, false},
      {"1 line", 1, true, true},
      {"4 lines of 1 page, chained", 4, true, true},
      {"4 lines of 1 page, independent", 4, true, false},
      {"3 pages, chained", 3, false, true},
      {"4 pages, chained", 4, false, true},
      {"4 pages, chained, the 3rd also prefetched at the start", 4, false, true, nullptr, 2},
      {"4 pages, independent", 4, false, false},
      {"8 pages, chained", 8, false, true},
      {"4 pages, chained, on one 2 MiB page", 4, false, true, nullptr, -1, true},
      {"8 pages, chained, on one 2 MiB page", 8, false, true, nullptr, -1, true},
      {"a call to a code page of its own", 0, true, false, far_code_a},
      {"a call to a code page of its own, then 4 pages chained", 4, false, true, far_code_b},
  };
  // One mapping, aligned to kCaseSpan (a multiple of 2 MiB) so each case's range can be
  // given a page size of its own.
  const std::size_t bytes = kCaseSpan * (cases.size() + 1);
  void* raw =
      mmap(nullptr, bytes + kCaseSpan, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) {
    std::cerr << "cannot map " << (bytes + kCaseSpan) / (1 << 20) << " MiB\n";
    return 1;
  }
  char* const buffer = reinterpret_cast<char*>(
      (reinterpret_cast<std::uintptr_t>(raw) + kCaseSpan - 1) / kCaseSpan * kCaseSpan);
  madvise(buffer, kCaseSpan, MADV_NOHUGEPAGE);
  std::size_t huge_kib_asked = 0;
  for (std::size_t k = 0; k < cases.size(); ++k) {
    Case& c = cases[k];
    c.first = buffer + kCaseSpan * (k + 1);
    madvise(c.first, kCaseSpan, c.huge_page ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    if (c.huge_page) huge_kib_asked += kCaseSpan >> 10;
  }
  std::memset(buffer, 1, bytes);  // every page mapped before the first sample
  const std::size_t huge_kib_granted = anon_huge_kib();
  for (Case& c : cases) {
    c.stride = c.same_page ? 2 * kLine : kPageStride * kPage + kLine;
    for (std::size_t i = 0; i < c.lines; ++i) {
      char* line = c.first + i * c.stride;
      char* next = i + 1 < c.lines ? line + c.stride : nullptr;
      std::memcpy(line, &next, sizeof next);
    }
  }

  const fb::TscClock clock;
  const double pauses_us[2] = {pause_us, short_pause_us};
  std::mt19937_64 rng(20261129);
  std::uniform_int_distribution<std::size_t> pick(0, 2 * cases.size() - 1);
  std::vector<std::vector<double>> ns(2 * cases.size());
  std::uintptr_t sink = 0;
  for (std::size_t s = 0; s < samples; ++s) {
    const std::size_t which = pick(rng);
    const Case& c = cases[which / 2];
    const double centre = pauses_us[which % 2] * 1e3;
    const double spread = std::min(100e3, centre / 10);
    std::uniform_real_distribution<double> pause_ns(centre - spread, centre + spread);
    const std::uint64_t ticks = sample(c, clock.ticks(pause_ns(rng)), sink);
    ns[which].push_back(clock.to_ns(static_cast<double>(ticks)));
  }
  asm volatile("" ::"r"(sink));

  std::ostringstream md;
  md << "Machine: " << cpu_model() << ", " << std::thread::hardware_concurrency() << " CPUs; "
     << samples << " samples; "
     << (cpu >= 0 ? "pinned to CPU " + std::to_string(cpu) : std::string("placed by the scheduler"))
     << ". Huge pages: the kernel backed " << huge_kib_granted / 1024 << " of the "
     << huge_kib_asked / 1024 << " MiB the \"2 MiB page\" cases asked for.\n\n"
     << "| what is read after the pause | pause | samples | p25 | p50 | p75 | p90 |\n"
     << "|---|---|---:|---:|---:|---:|---:|\n";
  for (std::size_t k = 0; k < cases.size(); ++k) {
    for (int p = 0; p < 2; ++p) {
      std::vector<double>& v = ns[2 * k + static_cast<std::size_t>(p)];
      std::sort(v.begin(), v.end());
      auto at = [&](double q) { return fb::nearest_rank(v, q); };
      md << "| " << cases[k].name << " | " << fb::fixed(pauses_us[p], 0) << " us | " << v.size()
         << " | " << fb::fixed(at(0.25)) << " | " << fb::fixed(at(0.5)) << " | "
         << fb::fixed(at(0.75)) << " | " << fb::fixed(at(0.9)) << " |\n";
    }
  }
  std::cout << md.str();
  if (!out_path.empty()) {
    std::ofstream f(out_path);
    f << md.str();
    if (!f) {
      std::cerr << "cannot write " << out_path << "\n";
      return 1;
    }
  }
  return 0;
}
