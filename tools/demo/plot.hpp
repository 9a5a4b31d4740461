// The demo's data files and plots: the latency distribution and the queue depth per
// priority over time, as data files, a gnuplot script, and SVGs where gnuplot is
// installed (Debian: gnuplot-nox). Without gnuplot the data files and the script stay,
// so `gnuplot <out>/plot.gp` draws them later.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "status_line.hpp"

namespace flightlog::demo {

struct PlotInput {
  std::vector<double> sorted_ns;  // every timed call, ascending
  int threads = 1;
  std::vector<Sample> samples;
  std::optional<double> receiver_up_at;    // seconds, on the samples' clock
  std::optional<double> logging_ended_at;  // likewise
};

struct PlotResult {
  std::vector<std::filesystem::path> data;   // written
  std::vector<std::filesystem::path> plots;  // drawn (empty without gnuplot)
  std::filesystem::path script;
  std::string note;  // why there are no plots, if there are none
};

// Writes into `out` (created if missing). Throws std::runtime_error when a file cannot
// be written.
PlotResult write_plots(const std::filesystem::path& out, const PlotInput& in);

}  // namespace flightlog::demo
