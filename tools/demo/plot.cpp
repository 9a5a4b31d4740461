#include "plot.hpp"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string_view>

#include "text.hpp"

extern char** environ;

namespace flightlog::demo {

namespace fs = std::filesystem;

namespace {

// Points of the complementary CDF per decade of the fraction.
constexpr int kPointsPerDecade = 40;

std::ofstream open_for_writing(const fs::path& p) {
  std::ofstream f(p, std::ios::trunc);
  if (!f) throw std::runtime_error("cannot write " + p.string());
  return f;
}

void close_checked(std::ofstream& f, const fs::path& p) {
  f.close();
  if (!f) throw std::runtime_error("cannot write " + p.string());
}

// latency.dat: "ns fraction", the fraction of calls that took at least ns, from 1 down
// to 1/N on a log scale (the tail gets as many points as the body).
void write_latency(const fs::path& p, const std::vector<double>& sorted) {
  std::ofstream f = open_for_writing(p);
  f << "# flightlog-demo: hot-path latency of log_prediction, complementary CDF\n"
       "# ns fraction_of_calls_at_least_this_slow\n";
  const std::size_t n = sorted.size();
  std::size_t last = n;
  for (int j = 0; n > 0; ++j) {
    const double frac = std::pow(10.0, -static_cast<double>(j) / kPointsPerDecade);
    auto tail = static_cast<std::size_t>(std::ceil(frac * static_cast<double>(n)));
    if (tail < 1) tail = 1;
    const std::size_t k = n - tail;
    if (k != last) {
      f << format("%.1f %.9g\n", sorted[k], static_cast<double>(tail) / static_cast<double>(n));
      last = k;
    }
    if (tail == 1) break;
  }
  close_checked(f, p);
}

// queue.dat: one row per status sample; the first line names the columns (gnuplot's
// columnheader).
void write_queue(const fs::path& p, const std::vector<Sample>& samples) {
  std::ofstream f = open_for_writing(p);
  f << "t CRITICAL HIGH NORMAL LOW uncommitted synced failed dropped rec_per_s receiver_up\n";
  for (const Sample& s : samples) {
    f << format("%.3f", s.t);
    for (std::size_t q : s.queued) f << ' ' << q;
    f << ' ' << s.uncommitted << ' ' << s.synced << ' ' << s.failed << ' ' << s.dropped
      << format(" %.0f", s.calls_per_s) << ' ' << (s.receiver_up ? 1 : 0) << '\n';
  }
  close_checked(f, p);
}

// A gnuplot string literal (single quotes: no escapes but a doubled quote).
std::string quoted(const fs::path& p) {
  std::string out = "'";
  for (char c : p.string()) {
    out += c;
    if (c == '\'') out += '\'';
  }
  return out + "'";
}

void write_script(const fs::path& p, const PlotInput& in, const fs::path& latency_dat,
                  const fs::path& latency_svg, const fs::path& queue_dat,
                  const fs::path& queue_svg) {
  std::ofstream f = open_for_writing(p);
  f << "# flightlog-demo's plots; run again with: gnuplot " << p.string() << "\n"
    << "set terminal svg size 960,540 dynamic noenhanced font 'sans,12' background '#ffffff'\n"
    << "set grid\nset key inside top right\n"
    << "set output " << quoted(latency_svg) << "\n"
    << "set title 'flightlog hot path: log_prediction latency, " << grouped(in.sorted_ns.size())
    << " calls, " << in.threads << " threads (TSC)'\n"
    << "set logscale xy\nset xlabel 'latency of one call (ns)'\n"
    << "set ylabel 'fraction of calls at least this slow'\nset format y '%g'\n"
    << "plot " << quoted(latency_dat)
    << " using 1:2 with steps lw 2 title 'log_prediction, schema form (W2)'\n"
    << "unset logscale\nset key outside right top\n"
    << "set output " << quoted(queue_svg) << "\n"
    << "set title 'flightlog journal: records queued per priority'\n"
    << "set xlabel 'seconds since logging started'\nset ylabel 'records queued'\n";
  auto mark = [&](int n, double t, const char* text) {
    f << format("set arrow %d from %.3f, graph 0 to %.3f, graph 1 nohead dashtype 2 lw 1\n", n, t,
                t)
      << format("set label %d ' %s' at %.3f, graph 0.95\n", n, text, t);
  };
  if (in.receiver_up_at) mark(1, *in.receiver_up_at, "receiver up");
  if (in.logging_ended_at) mark(2, *in.logging_ended_at, "logging ends");
  f << "plot for [i=2:5] " << quoted(queue_dat)
    << " using 1:i with lines lw 2 title columnheader(i)\n";
  close_checked(f, p);
}

std::optional<fs::path> find_on_path(std::string_view name) {
  const char* path = std::getenv("PATH");
  std::string_view rest = path != nullptr ? path : "/usr/bin:/bin";
  while (!rest.empty()) {
    const std::size_t colon = rest.find(':');
    const std::string_view dir = rest.substr(0, colon);
    rest.remove_prefix(colon == std::string_view::npos ? rest.size() : colon + 1);
    if (dir.empty()) continue;
    fs::path candidate = fs::path(dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// Runs gnuplot on the script; an empty string on success, else what went wrong.
std::string run_gnuplot(const fs::path& gnuplot, const fs::path& script) {
  std::string prog = gnuplot.string();
  std::string arg = script.string();
  char* argv[] = {prog.data(), arg.data(), nullptr};
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, prog.c_str(), nullptr, nullptr, argv, environ);
  if (rc != 0) return "cannot start " + prog + ": " + std::strerror(rc);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return "waitpid failed";
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return prog + " " + arg + " failed (its messages are above)";
  }
  return {};
}

}  // namespace

PlotResult write_plots(const fs::path& out_dir, const PlotInput& in) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw std::runtime_error("cannot create " + out_dir.string() + ": " + ec.message());
  const fs::path out = fs::absolute(out_dir);
  PlotResult r;
  const fs::path latency_dat = out / "latency.dat";
  const fs::path queue_dat = out / "queue.dat";
  const fs::path latency_svg = out / "latency.svg";
  const fs::path queue_svg = out / "queue.svg";
  r.script = out / "plot.gp";
  write_latency(latency_dat, in.sorted_ns);
  write_queue(queue_dat, in.samples);
  write_script(r.script, in, latency_dat, latency_svg, queue_dat, queue_svg);
  r.data = {latency_dat, queue_dat};

  const auto gnuplot = find_on_path("gnuplot");
  if (!gnuplot) {
    r.note = "gnuplot is not installed (Debian: apt-get install gnuplot-nox): no SVG drawn";
    return r;
  }
  r.note = run_gnuplot(*gnuplot, r.script);
  if (r.note.empty()) r.plots = {latency_svg, queue_svg};
  return r;
}

}  // namespace flightlog::demo
